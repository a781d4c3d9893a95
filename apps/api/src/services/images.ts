import { jobIds } from '@minicloud/queue';
import { resolve } from 'node:path';
import { CloudError, errors, newId, outboundUrlProblem } from '@minicloud/domain';
import { findImage, isUniqueViolation, listImages, markImageDeregistering } from '@minicloud/db';
import type { Image } from '@prisma/client';
import type { ServiceContext } from './context.js';
import { submitJob } from './jobs.js';

export function presentImage(i: Image) {
  const total = i.totalBytes === null ? null : Number(i.totalBytes);
  return {
    imageId: i.id,
    name: i.name,
    description: i.description,
    state: i.state,
    stateReason: i.stateReason,
    source: i.source,
    imageFormat: i.format,
    sizeBytes: i.sizeBytes === null ? null : Number(i.sizeBytes),
    virtualSize: i.virtualSize === null ? null : Number(i.virtualSize),
    checksumSha256: i.checksum,
    progress:
      i.state === 'available'
        ? 100
        : total
          ? Math.min(99, Math.floor((Number(i.copiedBytes) / total) * 100))
          : 0,
    copiedBytes: Number(i.copiedBytes),
    isDefault: i.isDefault,
    creationDate: i.createdAt.toISOString(),
  };
}

export class ImageService {
  constructor(private readonly ctx: ServiceContext) {}

  async register(input: {
    name: string;
    description?: string;
    source: string;
    isDefault?: boolean;
  }) {
    const { db, settings } = this.ctx;
    if (input.source.startsWith('/')) {
      const path = resolve(input.source);
      const allowed = settings.imageImportDirs.some((d) => d === '/' || path.startsWith(`${d}/`));
      if (!allowed) {
        throw errors.invalidParameter(
          `Local image sources must be under ${settings.imageImportDirs.join(', ')} (MINICLOUD_IMAGE_IMPORT_DIRS).`,
        );
      }
    } else {
      // What is plainly forbidden is refused here; the worker checks every address it connects to.
      const problem = outboundUrlProblem(input.source, settings.imageImportAllow);
      if (problem) throw errors.invalidParameter(`The image source cannot be fetched: ${problem}.`);
    }
    const duplicate = (id?: string) =>
      errors.duplicate(
        'InvalidAMIName.Duplicate',
        `An image named '${input.name}' already exists${id ? ` (${id})` : ''}.`,
      );
    const clash = await db.image.findFirst({
      where: { name: input.name, state: { notIn: ['deregistered', 'failed'] } },
    });
    if (clash) throw duplicate(clash.id);
    let image: Image;
    try {
      image = await db.image.create({
        data: {
          id: newId('image'),
          name: input.name,
          description: input.description,
          source: input.source,
          state: 'pending',
          isDefault: input.isDefault ?? false,
        },
      });
    } catch (e) {
      // The partial unique index on live names: a concurrent register of this name won.
      if (isUniqueViolation(e)) throw duplicate();
      throw e;
    }
    await submitJob(this.ctx, 'image.import', { imageId: image.id }, jobIds.imageImport(image.id));
    return presentImage(image);
  }

  async describe(imageId?: string) {
    return (await listImages(this.ctx.db, imageId)).map(presentImage);
  }

  async get(imageId: string) {
    const image = await findImage(this.ctx.db, imageId);
    if (!image || image.state === 'deregistered') throw notFound(imageId);
    return presentImage(image);
  }

  /**
   * Deregister: refused while any instance that is not terminated still uses it as backing file.
   * The check and the change are one transaction, so a launch reserving the image meanwhile is
   * either counted here or refused there.
   */
  async deregister(imageId: string) {
    const { db } = this.ctx;
    await db.$transaction(async (tx) => {
      const outcome = await markImageDeregistering(tx, imageId);
      if (outcome === 'missing') throw notFound(imageId);
      if (outcome === 'importing') {
        throw new CloudError(
          'IncorrectState',
          `The image '${imageId}' is still being imported.`,
          409,
        );
      }
      if (outcome !== 'ok') {
        throw errors.dependency(
          `The image '${imageId}' is in use by ${outcome} instance(s) or root volume(s) and cannot be deregistered.`,
        );
      }
    });
    await submitJob(this.ctx, 'image.delete', { imageId }, jobIds.imageDelete(imageId));
    return { imageId, state: 'deregistering' };
  }
}

const notFound = (id: string) =>
  errors.notFound('InvalidAMIID.NotFound', `The image id '${id}' does not exist.`);
