-- Two volumes never claim one disk target of an instance (issue 11): /dev/sdf and /dev/xvdf are
-- both target vdf, so the unique device alone let an alias through.
-- An attach that raced in under an alias never reached the host: it lets go of the instance,
-- so the index can be built.
UPDATE "Volume"
SET "state" = 'available', "instanceId" = NULL, "device" = NULL, "target" = NULL,
    "attachState" = NULL, "attachTime" = NULL,
    "stateReason" = 'attach refused: the device was already in use'
WHERE "attachState" = 'attaching'
  AND EXISTS (
    SELECT 1 FROM "Volume" AS "other"
    WHERE "other"."instanceId" = "Volume"."instanceId"
      AND "other"."target" = "Volume"."target"
      AND "other"."id" <> "Volume"."id"
      AND ("other"."attachState" <> 'attaching' OR "other"."attachTime" < "Volume"."attachTime")
  );

-- CreateIndex
CREATE UNIQUE INDEX "Volume_instanceId_target_key" ON "Volume"("instanceId", "target");
