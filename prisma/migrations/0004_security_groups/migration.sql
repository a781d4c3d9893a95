-- Security groups, their rules and instance membership (issue 4).
-- CreateTable
CREATE TABLE "SecurityGroup" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "vpcId" TEXT NOT NULL,
    "groupName" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "SecurityGroupRule" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "groupId" TEXT NOT NULL,
    "isEgress" BOOLEAN NOT NULL,
    "ipProtocol" TEXT NOT NULL,
    "fromPort" INTEGER,
    "toPort" INTEGER,
    "cidrIpv4" TEXT,
    "referencedGroupId" TEXT,
    "description" TEXT,
    "ruleKey" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- CreateTable
CREATE TABLE "InstanceSecurityGroup" (
    "instanceId" TEXT NOT NULL,
    "groupId" TEXT NOT NULL,
    "position" INTEGER NOT NULL DEFAULT 0,

    PRIMARY KEY ("instanceId", "groupId"),
    CONSTRAINT "InstanceSecurityGroup_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "InstanceSecurityGroup_groupId_fkey" FOREIGN KEY ("groupId") REFERENCES "SecurityGroup" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

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
