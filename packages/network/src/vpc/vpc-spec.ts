import { assertBridgeName, invalid, parseCidr } from '@minicloud/domain';
import type { DnsmasqInstance } from '../dhcp/dnsmasq.js';
import {
  assertSafePath,
  checkVpcSubnets,
  dnsmasqPaths,
  renderVpcDnsmasqArgs,
  type CheckedSubnet,
} from '../dhcp/dnsmasq-args.js';
import type { VpcNetworkSpec } from '../driver.js';

/** A VPC spec checked and turned into what the host needs (pure). */
export interface ValidVpc extends DnsmasqInstance {
  spec: VpcNetworkSpec;
  subnets: CheckedSubnet[];
}

/** A state directory we may own and delete: a safe absolute path, never /. */
export function assertStateDir(stateDir: string): string {
  const dir = assertSafePath(stateDir, 'stateDir');
  if (dir === '/') throw invalid('InvalidPath', 'stateDir must not be /');
  return dir;
}

/** Validate the spec (subnets inside the VPC, no overlap) and render its dnsmasq's argv. */
export function validateVpcSpec(spec: VpcNetworkSpec): ValidVpc {
  if (spec === null || typeof spec !== 'object')
    throw invalid('InvalidNetworkSpec', 'VPC network spec must be an object');
  const bridge = assertBridgeName(spec.bridge);
  const vpcNet = parseCidr(spec.cidr);
  const subnets = checkVpcSubnets(spec.subnets);
  for (const s of subnets) {
    if (s.net.networkInt < vpcNet.networkInt || s.net.broadcastInt > vpcNet.broadcastInt)
      throw invalid('InvalidNetworkSpec', `subnet ${s.net.cidr} is not inside ${vpcNet.cidr}`);
  }
  const stateDir = assertStateDir(spec.stateDir);
  const paths = dnsmasqPaths(stateDir);
  const args =
    subnets.length === 0
      ? []
      : renderVpcDnsmasqArgs({
          bridge,
          subnets: subnets.map((s) => ({ cidr: s.net.cidr, gatewayIp: s.gatewayIp })),
          ...paths,
          dns: spec.dns,
          dnsServers: spec.dnsServers,
          domain: spec.domain,
          leaseTime: spec.leaseTime,
          mtu: spec.mtu,
          logDhcp: spec.logDhcp,
        });
  return { spec, bridge, stateDir, paths, args, subnets };
}
