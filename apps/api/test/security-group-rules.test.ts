import { CloudError } from '@minicloud/domain';
import { checkGroupName, normalizeRule } from '../src/services/security-group-rules.js';
import { codeOf as codeOfType } from '@minicloud/testkit/expect-errors';

const codeOf = (fn: () => unknown) => codeOfType(fn, CloudError);

describe('security group rule rules', () => {
  it('normalizes protocols, ports and peers into one key per meaning', () => {
    const a = normalizeRule({
      ipProtocol: 'TCP',
      fromPort: 22,
      toPort: 22,
      cidrIpv4: '10.0.0.0/8',
    });
    const b = normalizeRule({ ipProtocol: '6', fromPort: 22, toPort: 22, cidrIpv4: '10.0.0.0/8' });
    expect(a).toMatchObject({
      ipProtocol: 'tcp',
      fromPort: 22,
      toPort: 22,
      cidrIpv4: '10.0.0.0/8',
    });
    expect(a.ruleKey).toBe(b.ruleKey);
    expect(normalizeRule({ ipProtocol: 'icmp', cidrIpv4: '0.0.0.0/0' })).toMatchObject({
      fromPort: -1,
      toPort: -1,
    });
    expect(
      normalizeRule({ ipProtocol: '-1', referencedGroupId: 'sg-0123456789abcdef0' }),
    ).toMatchObject({
      fromPort: null,
      toPort: null,
      ruleKey: '-1|||sg:sg-0123456789abcdef0',
    });
    expect(normalizeRule({ ipProtocol: 'all', cidrIpv4: '0.0.0.0/0' }).ipProtocol).toBe('-1');
  });

  it.each([
    [{ ipProtocol: 'gre', cidrIpv4: '0.0.0.0/0' }, 'InvalidParameterValue'],
    [
      { ipProtocol: 'tcp', fromPort: 1, toPort: 65536, cidrIpv4: '0.0.0.0/0' },
      'InvalidParameterValue',
    ],
    [
      { ipProtocol: 'udp', fromPort: 10, toPort: 9, cidrIpv4: '0.0.0.0/0' },
      'InvalidParameterValue',
    ],
    [{ ipProtocol: 'udp', toPort: 9, cidrIpv4: '0.0.0.0/0' }, 'MissingParameter'],
    [
      { ipProtocol: 'icmp', fromPort: -1, toPort: 3, cidrIpv4: '0.0.0.0/0' },
      'InvalidParameterValue',
    ],
    [
      { ipProtocol: 'icmp', fromPort: 3, toPort: 300, cidrIpv4: '0.0.0.0/0' },
      'InvalidParameterValue',
    ],
    [
      { ipProtocol: '-1', fromPort: 0, toPort: 65535, cidrIpv4: '0.0.0.0/0' },
      'InvalidParameterValue',
    ],
    [
      { ipProtocol: 'tcp', fromPort: 1, toPort: 2, cidrIpv4: '1.2.3.4/24' },
      'InvalidParameterValue',
    ],
    [{ ipProtocol: 'tcp', fromPort: 1, toPort: 2, cidrIpv4: 'x' }, 'InvalidParameterValue'],
    [{ ipProtocol: 'tcp', fromPort: 1, toPort: 2 }, 'MissingParameter'],
  ])('refuses %j with %s', (rule, code) => {
    expect(codeOf(() => normalizeRule(rule))).toBe(code);
  });

  it('checks group names as EC2 does', () => {
    expect(checkGroupName('web servers (prod)')).toBe('web servers (prod)');
    expect(codeOf(() => checkGroupName('default'))).toBe('InvalidGroup.Reserved');
    expect(codeOf(() => checkGroupName('SG-1'))).toBe('InvalidParameterValue');
    expect(codeOf(() => checkGroupName('é'))).toBe('InvalidParameterValue');
  });
});
