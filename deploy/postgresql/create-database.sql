-- minicloud's role and database. Run once as the postgres superuser, with a generated password:
--   PW=$(openssl rand -hex 24)
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -v password="$PW" -f create-database.sql
-- then put it into /etc/minicloud/minicloud.env:
--   MINICLOUD_DATABASE_URL=postgresql://minicloud:$PW@127.0.0.1:5432/minicloud
CREATE ROLE minicloud LOGIN PASSWORD :'password';
CREATE DATABASE minicloud OWNER minicloud ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE minicloud FROM PUBLIC;
