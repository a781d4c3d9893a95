import { NetworkValidationError } from '@minicloud/domain';
import {
  emptyEipMaps,
  planEipMapUpdate,
  renderEipMapUpdate,
  type EipMapsState,
} from '@minicloud/network';

describe('planEipMapUpdate / renderEipMapUpdate', () => {
  const current: EipMapsState = {
    held: new Set(['198.51.100.10', '198.51.100.11', '198.51.100.12']),
    dnat: new Map([
      ['198.51.100.10', '10.1.1.5'],
      ['198.51.100.12', '10.1.1.6'],
    ]),
  };

  test('associate a held address: two element adds', () => {
    const u = planEipMapUpdate('mc_vpc', current, [
      { publicIp: '198.51.100.11', privateIp: '10.1.1.7' },
    ]);
    expect(u.script).toBe(
      'add element ip mc_vpc eip_dnat { 198.51.100.11 : 10.1.1.7 }\n' +
        'add element ip mc_vpc eip_snat { 10.1.1.7 : 198.51.100.11 }\n',
    );
    expect(u.changed).toEqual(['198.51.100.11']);
    expect(u.next.dnat.get('198.51.100.11')).toBe('10.1.1.7');
  });

  test('move: delete the old elements and add the new ones in one transaction', () => {
    expect(
      renderEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.10', privateIp: '10.1.1.9' }]),
    ).toBe(
      'delete element ip mc_vpc eip_dnat { 198.51.100.10 }\n' +
        'delete element ip mc_vpc eip_snat { 10.1.1.5 }\n' +
        'add element ip mc_vpc eip_dnat { 198.51.100.10 : 10.1.1.9 }\n' +
        'add element ip mc_vpc eip_snat { 10.1.1.9 : 198.51.100.10 }\n',
    );
  });

  test('disassociate; release also leaves eip_held', () => {
    expect(
      renderEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.10', privateIp: null }]),
    ).toBe(
      'delete element ip mc_vpc eip_dnat { 198.51.100.10 }\n' +
        'delete element ip mc_vpc eip_snat { 10.1.1.5 }\n',
    );
    expect(
      renderEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.10', released: true }]),
    ).toBe(
      'delete element ip mc_vpc eip_dnat { 198.51.100.10 }\n' +
        'delete element ip mc_vpc eip_snat { 10.1.1.5 }\n' +
        'delete element ip mc_vpc eip_held { 198.51.100.10 }\n',
    );
    expect(
      renderEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.11', released: true }]),
    ).toBe('delete element ip mc_vpc eip_held { 198.51.100.11 }\n');
  });

  test('allocate: into eip_held, an existing association is kept (a retry)', () => {
    expect(renderEipMapUpdate('mc_vpc', emptyEipMaps(), [{ publicIp: '198.51.100.20' }])).toBe(
      'add element ip mc_vpc eip_held { 198.51.100.20 }\n',
    );
    expect(renderEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.10' }])).toBe('');
  });

  test('nothing to do: an empty script and no changed address (idempotent retry)', () => {
    const u = planEipMapUpdate('mc_vpc', current, [
      { publicIp: '198.51.100.10', privateIp: '10.1.1.5' },
    ]);
    expect(u).toMatchObject({ script: '', changed: [] });
  });

  test('swapping two addresses between two instances is one valid update', () => {
    const u = planEipMapUpdate('mc_vpc', current, [
      { publicIp: '198.51.100.10', privateIp: '10.1.1.6' },
      { publicIp: '198.51.100.12', privateIp: '10.1.1.5' },
    ]);
    expect(u.changed).toEqual(['198.51.100.10', '198.51.100.12']);
    expect(u.script).toBe(
      'delete element ip mc_vpc eip_dnat { 198.51.100.10, 198.51.100.12 }\n' +
        'delete element ip mc_vpc eip_snat { 10.1.1.5, 10.1.1.6 }\n' +
        'add element ip mc_vpc eip_dnat { 198.51.100.10 : 10.1.1.6, 198.51.100.12 : 10.1.1.5 }\n' +
        'add element ip mc_vpc eip_snat { 10.1.1.5 : 198.51.100.12, 10.1.1.6 : 198.51.100.10 }\n',
    );
  });

  test.each<[string, () => unknown]>([
    [
      'a private address that already has another Elastic IP',
      () =>
        planEipMapUpdate('mc_vpc', current, [{ publicIp: '198.51.100.11', privateIp: '10.1.1.5' }]),
    ],
    [
      'the same address twice',
      () =>
        planEipMapUpdate('mc_vpc', current, [
          { publicIp: '198.51.100.11', privateIp: '10.1.1.7' },
          { publicIp: '198.51.100.11', privateIp: null },
        ]),
    ],
    [
      'released and associated',
      () =>
        planEipMapUpdate('mc_vpc', current, [
          { publicIp: '198.51.100.11', privateIp: '10.1.1.7', released: true },
        ]),
    ],
    [
      'malformed address',
      () => planEipMapUpdate('mc_vpc', current, [{ publicIp: '1.2.3', privateIp: null }]),
    ],
    ['bad table', () => planEipMapUpdate('mc vpc', current, [])],
  ])('refused: %s', (_what, fn) => {
    expect(fn).toThrow(NetworkValidationError);
  });
});
