-- SQLite 0005_image_live_name, 0006_volume_target_unique and 0007_pending_jobs (issues 10, 11),
-- written by scripts/postgres-schema.ts; the partial index below is hand-written, as in 0005.
-- CreateTable
CREATE TABLE "PendingJob" (
    "jobId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PendingJob_pkey" PRIMARY KEY ("jobId")
);

-- CreateIndex
CREATE INDEX "PendingJob_createdAt_idx" ON "PendingJob"("createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "Volume_instanceId_target_key" ON "Volume"("instanceId", "target");


-- One live image per name (Prisma's schema cannot say this; SQLite's 0005 has the same index).
CREATE UNIQUE INDEX "Image_live_name_key" ON "Image"("name")
WHERE "state" NOT IN ('deregistered', 'failed');
