import { vpcTableName } from '@minicloud/domain';
import type { VpcWithSubnetsAndGateway } from '@minicloud/db';
import {
  planVpcRuleset,
  type ElasticIpModel,
  type VpcModel,
  type VpcNetworkModel,
  type VpcNetworkSpec,
} from '@minicloud/network';
import type { ElasticIp } from '@prisma/client';
import type { WorkerSettings } from '../context.js';
import { messageOf } from './util.js';
import { VPC_ID_RE, vpcModel, vpcNetworkSpec } from './vpc-spec.js';

/** A VPC row with what the host makes of it. */
export interface HostVpc {
  row: VpcWithSubnetsAndGateway;
  spec: VpcNetworkSpec;
  model: VpcModel;
}

/**
 * The database as the VPC ruleset model (pure). Rows the host cannot have are left out and named
 * in `skipped` (an association whose VPC is gone keeps its address held, unassociated); when the
 * whole does not fit, VPCs and then Elastic IPs are kept one by one as long as they fit with what
 * was kept before.
 */
export function buildRulesetModel(
  settings: Pick<WorkerSettings, 'prefix' | 'networksDir' | 'uplink'>,
  vpcRows: readonly VpcWithSubnetsAndGateway[],
  eipRows: readonly ElasticIp[],
  skipped: string[],
): { vpcs: HostVpc[]; network: VpcNetworkModel } {
  const candidates: HostVpc[] = [];
  for (const row of vpcRows) {
    try {
      if (!VPC_ID_RE.test(row.id)) throw new Error('not a VPC id');
      const spec = vpcNetworkSpec(settings, row);
      candidates.push({ row, spec, model: vpcModel(row.id, spec, Boolean(row.gateway)) });
    } catch (e) {
      skipped.push(`${row.id}: ${messageOf(e)}`);
    }
  }
  const base = { table: vpcTableName(settings.prefix), uplink: settings.uplink };
  const fits = (vpcs: HostVpc[], elasticIps: ElasticIpModel[]) => {
    try {
      planVpcRuleset({ ...base, vpcs: vpcs.map((v) => v.model), elasticIps });
      return null;
    } catch (e) {
      return messageOf(e);
    }
  };

  const known = new Set(candidates.map((v) => v.row.id));
  const eips: ElasticIpModel[] = eipRows.map((r) => {
    if (r.privateIp && r.vpcId && known.has(r.vpcId))
      return { publicIp: r.publicIp, privateIp: r.privateIp, vpcId: r.vpcId };
    if (r.privateIp || r.vpcId)
      skipped.push(`association of ${r.publicIp} (${r.id}): its VPC ${r.vpcId ?? '?'} is gone`);
    return { publicIp: r.publicIp, privateIp: null };
  });

  // The usual case: everything fits at once.
  if (fits(candidates, eips) === null) {
    return {
      vpcs: candidates,
      network: { ...base, vpcs: candidates.map((v) => v.model), elasticIps: eips },
    };
  }
  const vpcs: HostVpc[] = [];
  for (const v of candidates) {
    const why = fits([...vpcs, v], []);
    if (why === null) vpcs.push(v);
    else skipped.push(`${v.row.id}: ${why}`);
  }
  const kept: ElasticIpModel[] = [];
  for (const e of eips) {
    const why = fits(vpcs, [...kept, e]);
    if (why === null) {
      kept.push(e);
      continue;
    }
    const bare = { publicIp: e.publicIp, privateIp: null };
    if (e.privateIp !== null && fits(vpcs, [...kept, bare]) === null) {
      kept.push(bare);
      skipped.push(`association ${e.publicIp} -> ${e.privateIp}: ${why}`);
    } else {
      skipped.push(`Elastic IP ${e.publicIp}: ${why}`);
    }
  }
  return { vpcs, network: { ...base, vpcs: vpcs.map((v) => v.model), elasticIps: kept } };
}
