import { rangeToCidrs } from '@minicloud/domain';

describe('rangeToCidrs', () => {
  test('covers exactly the range with the fewest blocks', () => {
    expect(rangeToCidrs('198.51.100.16', '198.51.100.31')).toEqual(['198.51.100.16/28']);
    expect(rangeToCidrs('198.51.100.5', '198.51.100.5')).toEqual(['198.51.100.5/32']);
    expect(rangeToCidrs('198.51.100.3', '198.51.100.9')).toEqual([
      '198.51.100.3/32',
      '198.51.100.4/30',
      '198.51.100.8/31',
    ]);
    expect(rangeToCidrs('0.0.0.0', '255.255.255.255')).toEqual(['0.0.0.0/0']);
  });
});
