-- PostgreSQL baseline: the schema of SQLite migrations 0001_init to 0004_security_groups,
-- written by scripts/postgres-schema.ts (prisma migrate diff --from-empty).
-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateTable
CREATE TABLE "Image" (
    "id" TEXT NOT NULL,
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
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Image_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "InstanceType" (
    "name" TEXT NOT NULL,
    "family" TEXT NOT NULL,
    "vcpus" INTEGER NOT NULL,
    "memoryMiB" INTEGER NOT NULL,
    "instanceStorageGiB" INTEGER NOT NULL DEFAULT 0,
    "gpus" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "InstanceType_pkey" PRIMARY KEY ("name")
);

-- CreateTable
CREATE TABLE "KeyPair" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "keyType" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "publicKey" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "KeyPair_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Reservation" (
    "id" TEXT NOT NULL,
    "clientToken" TEXT,
    "requestHash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Reservation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Instance" (
    "id" TEXT NOT NULL,
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
    "subnetId" TEXT,
    "networkInterfaceId" TEXT,
    "userData" TEXT,
    "amiLaunchIndex" INTEGER NOT NULL DEFAULT 0,
    "actionSeq" INTEGER NOT NULL DEFAULT 0,
    "launchTime" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "terminatedAt" TIMESTAMP(3),
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Instance_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AddressLease" (
    "network" TEXT NOT NULL,
    "ip" TEXT NOT NULL,
    "subnetId" TEXT,
    "mac" TEXT NOT NULL,
    "instanceId" TEXT NOT NULL,

    CONSTRAINT "AddressLease_pkey" PRIMARY KEY ("network","ip")
);

-- CreateTable
CREATE TABLE "Tag" (
    "resourceId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "value" TEXT NOT NULL,

    CONSTRAINT "Tag_pkey" PRIMARY KEY ("resourceId","key")
);

-- CreateTable
CREATE TABLE "Volume" (
    "id" TEXT NOT NULL,
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
    "attachTime" TIMESTAMP(3),
    "deleteOnTermination" BOOLEAN NOT NULL DEFAULT false,
    "actionSeq" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMP(3),

    CONSTRAINT "Volume_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Snapshot" (
    "id" TEXT NOT NULL,
    "volumeId" TEXT NOT NULL,
    "volumeSize" INTEGER NOT NULL,
    "description" TEXT,
    "state" TEXT NOT NULL,
    "stateReason" TEXT,
    "progress" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deletedAt" TIMESTAMP(3),

    CONSTRAINT "Snapshot_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Vpc" (
    "id" TEXT NOT NULL,
    "cidrBlock" TEXT NOT NULL,
    "bridgeKey" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "state" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Vpc_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Subnet" (
    "id" TEXT NOT NULL,
    "vpcId" TEXT NOT NULL,
    "cidrBlock" TEXT NOT NULL,
    "mapPublicIpOnLaunch" BOOLEAN NOT NULL DEFAULT false,
    "defaultForAz" BOOLEAN NOT NULL DEFAULT false,
    "state" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Subnet_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "InternetGateway" (
    "id" TEXT NOT NULL,
    "vpcId" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "InternetGateway_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PublicIpv4Pool" (
    "id" TEXT NOT NULL,
    "description" TEXT,
    "firstIp" TEXT NOT NULL,
    "lastIp" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PublicIpv4Pool_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ElasticIp" (
    "id" TEXT NOT NULL,
    "publicIp" TEXT NOT NULL,
    "poolId" TEXT NOT NULL,
    "associationId" TEXT,
    "instanceId" TEXT,
    "privateIp" TEXT,
    "vpcId" TEXT,
    "autoAssigned" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ElasticIp_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "SecurityGroup" (
    "id" TEXT NOT NULL,
    "vpcId" TEXT NOT NULL,
    "groupName" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "SecurityGroup_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "SecurityGroupRule" (
    "id" TEXT NOT NULL,
    "groupId" TEXT NOT NULL,
    "isEgress" BOOLEAN NOT NULL,
    "ipProtocol" TEXT NOT NULL,
    "fromPort" INTEGER,
    "toPort" INTEGER,
    "cidrIpv4" TEXT,
    "referencedGroupId" TEXT,
    "description" TEXT,
    "ruleKey" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "SecurityGroupRule_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "InstanceSecurityGroup" (
    "instanceId" TEXT NOT NULL,
    "groupId" TEXT NOT NULL,
    "position" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "InstanceSecurityGroup_pkey" PRIMARY KEY ("instanceId","groupId")
);

-- CreateIndex
CREATE UNIQUE INDEX "KeyPair_name_key" ON "KeyPair"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Reservation_clientToken_key" ON "Reservation"("clientToken");

-- CreateIndex
CREATE UNIQUE INDEX "Instance_networkInterfaceId_key" ON "Instance"("networkInterfaceId");

-- CreateIndex
CREATE INDEX "Instance_state_idx" ON "Instance"("state");

-- CreateIndex
CREATE INDEX "Instance_launchTime_idx" ON "Instance"("launchTime");

-- CreateIndex
CREATE UNIQUE INDEX "AddressLease_instanceId_key" ON "AddressLease"("instanceId");

-- CreateIndex
CREATE INDEX "AddressLease_subnetId_idx" ON "AddressLease"("subnetId");

-- CreateIndex
CREATE UNIQUE INDEX "AddressLease_network_mac_key" ON "AddressLease"("network", "mac");

-- CreateIndex
CREATE INDEX "Tag_key_value_idx" ON "Tag"("key", "value");

-- CreateIndex
CREATE INDEX "Volume_state_idx" ON "Volume"("state");

-- CreateIndex
CREATE UNIQUE INDEX "Volume_instanceId_device_key" ON "Volume"("instanceId", "device");

-- CreateIndex
CREATE INDEX "Snapshot_volumeId_idx" ON "Snapshot"("volumeId");

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

-- CreateIndex
CREATE INDEX "SecurityGroup_vpcId_idx" ON "SecurityGroup"("vpcId");

-- CreateIndex
CREATE UNIQUE INDEX "SecurityGroup_vpcId_groupName_key" ON "SecurityGroup"("vpcId", "groupName");

-- CreateIndex
CREATE INDEX "SecurityGroupRule_referencedGroupId_idx" ON "SecurityGroupRule"("referencedGroupId");

-- CreateIndex
CREATE UNIQUE INDEX "SecurityGroupRule_groupId_isEgress_ruleKey_key" ON "SecurityGroupRule"("groupId", "isEgress", "ruleKey");

-- CreateIndex
CREATE INDEX "InstanceSecurityGroup_groupId_idx" ON "InstanceSecurityGroup"("groupId");

-- AddForeignKey
ALTER TABLE "Instance" ADD CONSTRAINT "Instance_reservationId_fkey" FOREIGN KEY ("reservationId") REFERENCES "Reservation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Instance" ADD CONSTRAINT "Instance_imageId_fkey" FOREIGN KEY ("imageId") REFERENCES "Image"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AddressLease" ADD CONSTRAINT "AddressLease_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Subnet" ADD CONSTRAINT "Subnet_vpcId_fkey" FOREIGN KEY ("vpcId") REFERENCES "Vpc"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InternetGateway" ADD CONSTRAINT "InternetGateway_vpcId_fkey" FOREIGN KEY ("vpcId") REFERENCES "Vpc"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InstanceSecurityGroup" ADD CONSTRAINT "InstanceSecurityGroup_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "InstanceSecurityGroup" ADD CONSTRAINT "InstanceSecurityGroup_groupId_fkey" FOREIGN KEY ("groupId") REFERENCES "SecurityGroup"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


-- One default VPC, also when two processes start at once (Prisma's schema cannot say this;
-- SQLite's 0003_vpcs has the same index).
CREATE UNIQUE INDEX "Vpc_single_default" ON "Vpc"("isDefault") WHERE "isDefault" = true;
