import type { Prisma, PrismaClient } from '@prisma/client';

/** What a repository function reads or writes through: the client, or a transaction of it. */
export type DbClient = PrismaClient | Prisma.TransactionClient;
