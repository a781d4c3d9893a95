import { findImage } from '@minicloud/db';
import { UnrecoverableError, type Job } from '@minicloud/queue';
import type { WorkerDeps } from '../context.js';
import { isLastAttempt, reasonOf } from './failure.js';

/** Import errors no retry can fix: a bad image, a forbidden source, an image over the cap. */
const PERMANENT = new Set([
  'InvalidImage',
  'InvalidParameterValue',
  'ImageSourceForbidden',
  'ImageTooLarge',
]);

/** image.import: copy or download, hash, inspect and refuse unsafe images; progress on the row. */
export async function importImage(deps: WorkerDeps, imageId: string, job: Job): Promise<void> {
  await deps.locks.run(imageId, async () => {
    const image = await findImage(deps.db, imageId);
    if (!image || image.state !== 'pending') return;
    let lastWrite = Promise.resolve();
    try {
      const result = await deps.images.importImage({
        imageId,
        source: image.source,
        onProgress: (copied, total) => {
          lastWrite = lastWrite.then(async () => {
            await deps.db.image.updateMany({
              where: { id: imageId, state: 'pending' },
              data: {
                copiedBytes: BigInt(copied),
                totalBytes: total === null ? null : BigInt(total),
              },
            });
          });
        },
      });
      await lastWrite;
      await deps.db.image.update({
        where: { id: imageId },
        data: {
          state: 'available',
          path: result.path,
          format: result.format,
          sizeBytes: BigInt(result.sizeBytes),
          virtualSize: BigInt(result.virtualSize),
          checksum: result.checksumSha256,
          copiedBytes: BigInt(result.sizeBytes),
          totalBytes: BigInt(result.sizeBytes),
        },
      });
      deps.log(`image ${imageId} available (${result.format}, ${result.sizeBytes} bytes)`);
    } catch (error) {
      await lastWrite.catch(() => {});
      const permanent = PERMANENT.has((error as { code?: string }).code ?? '');
      if (permanent || isLastAttempt(job, error)) {
        await deps.db.image.update({
          where: { id: imageId },
          data: { state: 'failed', stateReason: reasonOf(error) },
        });
        throw new UnrecoverableError(reasonOf(error));
      }
      throw error;
    }
  });
}

/** image.delete: remove the file, then mark the image deregistered. */
export async function deleteImage(deps: WorkerDeps, imageId: string): Promise<void> {
  await deps.locks.run(imageId, async () => {
    const image = await findImage(deps.db, imageId);
    if (!image || image.state !== 'deregistering') return;
    await deps.images.removeImage(imageId);
    await deps.db.image.update({
      where: { id: imageId },
      data: { state: 'deregistered', path: null },
    });
  });
}
