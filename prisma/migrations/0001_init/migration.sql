-- CreateTable
CREATE TABLE "Image" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "state" TEXT NOT NULL,
    "stateReason" TEXT,
    "source" TEXT NOT NULL,
    "format" TEXT,
    "sizeBytes" BIGINT,
    "virtualSize" BIGINT,
    "checksum" TEXT,
    "copiedBytes" BIGINT NOT NULL DEFAULT 0,
    "totalBytes" BIGINT,
    "path" TEXT,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "InstanceType" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "family" TEXT NOT NULL,
    "vcpus" INTEGER NOT NULL,
    "memoryMiB" INTEGER NOT NULL,
    "instanceStorageGiB" INTEGER NOT NULL DEFAULT 0,
    "gpus" INTEGER NOT NULL DEFAULT 0,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "KeyPair" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "keyType" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "publicKey" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "Reservation" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "clientToken" TEXT,
    "requestHash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "Instance" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "reservationId" TEXT NOT NULL,
    "imageId" TEXT NOT NULL,
    "instanceType" TEXT NOT NULL,
    "vcpus" INTEGER NOT NULL,
    "memoryMiB" INTEGER NOT NULL,
    "keyName" TEXT,
    "publicKey" TEXT,
    "state" TEXT NOT NULL,
    "stateReason" TEXT,
    "privateIp" TEXT,
    "macAddress" TEXT NOT NULL,
    "network" TEXT NOT NULL,
    "userData" TEXT,
    "amiLaunchIndex" INTEGER NOT NULL DEFAULT 0,
    "actionSeq" INTEGER NOT NULL DEFAULT 0,
    "launchTime" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "terminatedAt" DATETIME,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Instance_reservationId_fkey" FOREIGN KEY ("reservationId") REFERENCES "Reservation" ("id") ON DELETE RESTRICT ON UPDATE CASCADE,
    CONSTRAINT "Instance_imageId_fkey" FOREIGN KEY ("imageId") REFERENCES "Image" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "AddressLease" (
    "network" TEXT NOT NULL,
    "ip" TEXT NOT NULL,
    "mac" TEXT NOT NULL,
    "instanceId" TEXT NOT NULL,

    PRIMARY KEY ("network", "ip"),
    CONSTRAINT "AddressLease_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Tag" (
    "resourceId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,

    PRIMARY KEY ("resourceId", "key")
);

-- CreateIndex
CREATE UNIQUE INDEX "KeyPair_name_key" ON "KeyPair"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Reservation_clientToken_key" ON "Reservation"("clientToken");

-- CreateIndex
CREATE INDEX "Instance_state_idx" ON "Instance"("state");

-- CreateIndex
CREATE INDEX "Instance_launchTime_idx" ON "Instance"("launchTime");

-- CreateIndex
CREATE UNIQUE INDEX "AddressLease_instanceId_key" ON "AddressLease"("instanceId");

-- CreateIndex
CREATE UNIQUE INDEX "AddressLease_network_mac_key" ON "AddressLease"("network", "mac");

-- CreateIndex
CREATE INDEX "Tag_key_value_idx" ON "Tag"("key", "value");

