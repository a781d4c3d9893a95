-- One live image per name (issue 11): the check in ImageService.register was a look-up and an
-- insert, so two concurrent registers could both pass it. A partial unique index makes the
-- database refuse the second (P2002 -> InvalidAMIName.Duplicate); deregistered and failed
-- images free their name. Prisma's schema language cannot express a partial index: it lives
-- only here (see the comment on model Image).
-- Images that already share a live name (made by that race) keep their rows: all but the
-- oldest get their id appended to the name, so the index can be built.
UPDATE "Image" SET "name" = "name" || ' (' || "id" || ')'
WHERE "state" NOT IN ('deregistered', 'failed')
  AND EXISTS (
    SELECT 1 FROM "Image" AS "older"
    WHERE "older"."name" = "Image"."name"
      AND "older"."state" NOT IN ('deregistered', 'failed')
      AND ("older"."createdAt" < "Image"."createdAt"
        OR ("older"."createdAt" = "Image"."createdAt" AND "older"."id" < "Image"."id"))
  );

CREATE UNIQUE INDEX "Image_live_name_key" ON "Image"("name")
WHERE "state" NOT IN ('deregistered', 'failed');
