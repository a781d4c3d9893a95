import { emptyEipMaps, parseEipMaps } from '@minicloud/network';

describe('parseEipMaps', () => {
  test('reads eip_held and eip_dnat from nft -j list table (plain and object elements)', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'ip', name: 'mc_vpc' } },
        { set: { name: 'bridges', elem: ['mcv0a0a0a0a0'] } },
        {
          set: {
            name: 'eip_held',
            elem: ['198.51.100.10', { elem: { val: '198.51.100.11', counter: {} } }],
          },
        },
        { map: { name: 'eip_dnat', elem: [['198.51.100.10', '10.1.1.5']] } },
        { map: { name: 'eip_snat', elem: [['10.1.1.5', '198.51.100.10']] } },
      ],
    });
    expect(parseEipMaps(json)).toEqual({
      held: new Set(['198.51.100.10', '198.51.100.11']),
      dnat: new Map([['198.51.100.10', '10.1.1.5']]),
    });
  });

  test('empty sets have no elem key', () => {
    const json = JSON.stringify({
      nftables: [{ set: { name: 'eip_held' } }, { map: { name: 'eip_dnat' } }],
    });
    expect(parseEipMaps(json)).toEqual(emptyEipMaps());
  });

  test('null when the table is not a VPC table', () => {
    expect(parseEipMaps(JSON.stringify({ nftables: [{ table: { name: 'x' } }] }))).toBeNull();
  });
});
