-- VPCs, subnets, internet gateways, public address pools and Elastic IPs (issue 3).
-- Instance."network" and AddressLease."network" now hold the VPC id; rows written before VPCs
-- ('default') are adopted by the default VPC when the server starts.

-- AlterTable
ALTER TABLE "Instance" ADD COLUMN "subnetId" TEXT;
ALTER TABLE "Instance" ADD COLUMN "networkInterfaceId" TEXT;
ALTER TABLE "AddressLease" ADD COLUMN "subnetId" TEXT;

CREATE TABLE "Vpc" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "cidrBlock" TEXT NOT NULL,
    "bridgeKey" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "state" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "Subnet" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "vpcId" TEXT NOT NULL,
    "cidrBlock" TEXT NOT NULL,
    "mapPublicIpOnLaunch" BOOLEAN NOT NULL DEFAULT false,
    "defaultForAz" BOOLEAN NOT NULL DEFAULT false,
    "state" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "Subnet_vpcId_fkey" FOREIGN KEY ("vpcId") REFERENCES "Vpc" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "InternetGateway" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "vpcId" TEXT,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "InternetGateway_vpcId_fkey" FOREIGN KEY ("vpcId") REFERENCES "Vpc" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "PublicIpv4Pool" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "description" TEXT,
    "firstIp" TEXT NOT NULL,
    "lastIp" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "ElasticIp" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "publicIp" TEXT NOT NULL,
    "poolId" TEXT NOT NULL,
    "associationId" TEXT,
    "instanceId" TEXT,
    "privateIp" TEXT,
    "vpcId" TEXT,
    "autoAssigned" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateIndex

-- CreateIndex
CREATE UNIQUE INDEX "Instance_networkInterfaceId_key" ON "Instance"("networkInterfaceId");

-- CreateIndex
CREATE INDEX "AddressLease_subnetId_idx" ON "AddressLease"("subnetId");

-- CreateIndex
CREATE UNIQUE INDEX "Vpc_bridgeKey_key" ON "Vpc"("bridgeKey");

-- CreateIndex
CREATE INDEX "Subnet_vpcId_idx" ON "Subnet"("vpcId");

-- CreateIndex
CREATE UNIQUE INDEX "InternetGateway_vpcId_key" ON "InternetGateway"("vpcId");

-- CreateIndex
CREATE UNIQUE INDEX "ElasticIp_publicIp_key" ON "ElasticIp"("publicIp");

-- CreateIndex
CREATE UNIQUE INDEX "ElasticIp_associationId_key" ON "ElasticIp"("associationId");

-- CreateIndex
CREATE UNIQUE INDEX "ElasticIp_instanceId_key" ON "ElasticIp"("instanceId");

-- CreateIndex
CREATE INDEX "ElasticIp_poolId_idx" ON "ElasticIp"("poolId");


-- One default VPC, also when two processes start at once (Prisma's schema cannot say this).
CREATE UNIQUE INDEX "Vpc_single_default" ON "Vpc"("isDefault") WHERE "isDefault" = true;
