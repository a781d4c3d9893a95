import { goldenFiles } from '../src/golden.js';

describe('goldenFiles', () => {
  const golden = goldenFiles(import.meta.url);

  it('passes when the output matches test/golden/NAME', () => {
    golden('hello.txt', 'hello\n');
  });

  // UPDATE_GOLDEN=1 would write the wrong text into the golden file: not then.
  (process.env.UPDATE_GOLDEN === '1' ? it.skip : it)('fails when it does not', () => {
    expect(() => golden('hello.txt', 'hullo\n')).toThrow();
  });
});
