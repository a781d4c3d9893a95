// jest setupFiles of the integration-postgres project: the harnesses open PostgreSQL databases.
process.env.MINICLOUD_TEST_DATABASE = 'postgres';
