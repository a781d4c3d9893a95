import { CloudError } from '@minicloud/domain';
import {
  allocateSubnetAddresses,
  availableAddressCount,
  checkRequestedAddress,
  checkSubnetCidr,
  checkVpcCidr,
  firstFreeInRange,
  overlapping,
  parsePoolSetting,
} from '../src/services/network-rules.js';
import { codeOf as codeOfType } from '@minicloud/testkit/expect-errors';

const codeOf = (fn: () => unknown) => codeOfType(fn, CloudError);

describe('VPC address rules', () => {
  it.each([
    ['10.0.0.0/16', null],
    ['172.16.0.0/28', null],
    ['192.168.10.0/24', null],
    ['100.64.0.0/16', null],
    ['10.0.0.0/15', 'InvalidVpc.Range'],
    ['10.0.0.0/29', 'InvalidVpc.Range'],
    ['11.0.0.0/16', 'InvalidVpc.Range'],
    ['172.32.0.0/16', 'InvalidVpc.Range'],
    ['10.0.0.1/16', 'InvalidParameterValue'],
    ['10.0.0.256/24', 'InvalidParameterValue'],
    ['10.0.0/24', 'InvalidParameterValue'],
  ])('VPC block %s -> %s', (cidr, code) => {
    expect(codeOf(() => checkVpcCidr(cidr))).toBe(code);
  });

  it('uses the subnet error code for subnets', () => {
    expect(codeOf(() => checkSubnetCidr('10.0.0.0/30'))).toBe('InvalidSubnet.Range');
  });

  it('counts free addresses as EC2 does (5 reserved per subnet)', () => {
    expect(availableAddressCount('10.0.0.0/24', 0)).toBe(251);
    expect(availableAddressCount('10.0.0.0/28', 0)).toBe(11);
    expect(availableAddressCount('10.0.0.0/28', 11)).toBe(0);
    expect(availableAddressCount('10.0.0.0/16', 3)).toBe(65536 - 5 - 3);
  });

  it('allocates the lowest free addresses after the reserved ones, never a taken one', () => {
    expect(allocateSubnetAddresses('10.0.0.0/28', new Set(), 3)).toEqual([
      '10.0.0.4',
      '10.0.0.5',
      '10.0.0.6',
    ]);
    expect(allocateSubnetAddresses('10.0.0.0/28', new Set(['10.0.0.4', '10.0.0.6']), 2)).toEqual([
      '10.0.0.5',
      '10.0.0.7',
    ]);
    // 11 usable: asking for 20 gives 11, the caller reports the shortage.
    expect(allocateSubnetAddresses('10.0.0.0/28', new Set(), 20)).toHaveLength(11);
  });

  it.each([
    ['10.0.0.9', null],
    ['10.0.0.1', 'InvalidParameterValue'],
    ['10.0.0.3', 'InvalidParameterValue'],
    ['10.0.0.15', 'InvalidParameterValue'],
    ['10.0.1.9', 'InvalidParameterValue'],
    ['10.0.0.7', 'InvalidIPAddress.InUse'],
    ['10.0.0.300', 'InvalidParameterValue'],
  ])('requested address %s in 10.0.0.0/28 (10.0.0.7 taken) -> %s', (ip, code) => {
    expect(codeOf(() => checkRequestedAddress('10.0.0.0/28', ip, new Set(['10.0.0.7'])))).toBe(
      code,
    );
  });

  it('parses pools as a CIDR or a range and refuses empty or huge ones', () => {
    expect(parsePoolSetting('198.51.100.16/28')).toEqual({
      first: '198.51.100.16',
      last: '198.51.100.31',
      size: 16,
    });
    expect(parsePoolSetting('198.51.100.16-198.51.100.20').size).toBe(5);
    expect(codeOf(() => parsePoolSetting('198.51.100.20-198.51.100.16'))).toBe(
      'InvalidParameterValue',
    );
    expect(codeOf(() => parsePoolSetting('10.0.0.0/8'))).toBe('InvalidParameterValue');
  });

  it('finds overlaps and free pool addresses', () => {
    expect(
      overlapping(
        { first: '10.0.0.0', last: '10.0.0.255' },
        { first: '10.0.0.255', last: '10.0.1.0' },
      ),
    ).toBe(true);
    expect(
      overlapping(
        { first: '10.0.0.0', last: '10.0.0.255' },
        { first: '10.0.1.0', last: '10.0.1.9' },
      ),
    ).toBe(false);
    const range = { first: '198.51.100.16', last: '198.51.100.17' };
    expect(firstFreeInRange(range, new Set(['198.51.100.16']))).toBe('198.51.100.17');
    expect(firstFreeInRange(range, new Set(['198.51.100.16', '198.51.100.17']))).toBeNull();
  });
});
