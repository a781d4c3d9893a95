-- The outbox of committed work (issue 10): re-enqueued until its job has finished.
-- CreateTable
CREATE TABLE "PendingJob" (
    "jobId" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateIndex
CREATE INDEX "PendingJob_createdAt_idx" ON "PendingJob"("createdAt");
