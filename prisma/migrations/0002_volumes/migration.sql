-- CreateTable
CREATE TABLE "Volume" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sizeGiB" INTEGER NOT NULL,
    "volumeType" TEXT NOT NULL,
    "iops" INTEGER,
    "throughput" INTEGER,
    "snapshotId" TEXT,
    "state" TEXT NOT NULL,
    "stateReason" TEXT,
    "imageId" TEXT,
    "isRoot" BOOLEAN NOT NULL DEFAULT false,
    "instanceId" TEXT,
    "device" TEXT,
    "target" TEXT,
    "attachState" TEXT,
    "attachTime" DATETIME,
    "deleteOnTermination" BOOLEAN NOT NULL DEFAULT false,
    "actionSeq" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" DATETIME
);

-- CreateTable
CREATE TABLE "Snapshot" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "volumeId" TEXT NOT NULL,
    "volumeSize" INTEGER NOT NULL,
    "description" TEXT,
    "state" TEXT NOT NULL,
    "stateReason" TEXT,
    "progress" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" DATETIME
);


-- CreateIndex
CREATE INDEX "Volume_state_idx" ON "Volume"("state");

-- CreateIndex
CREATE UNIQUE INDEX "Volume_instanceId_device_key" ON "Volume"("instanceId", "device");

-- CreateIndex
CREATE INDEX "Snapshot_volumeId_idx" ON "Snapshot"("volumeId");
