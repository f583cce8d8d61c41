import { RateLimiter } from './rate-limit';

it('allows the configured rate per key, refills over time, and says when to retry', () => {
  let t = 0;
  const rl = new RateLimiter(2, 'signing', () => t);
  rl.take('a');
  rl.take('a');
  expect(() => rl.take('a')).toThrow(/signing rate limit \(2\/s\) exceeded; retry in 0\.5s/);
  rl.take('b'); // keys are independent
  t = 0.5;
  rl.take('a');
  expect(() => rl.take('a')).toThrow(expect.objectContaining({ code: 'RESOURCE_EXHAUSTED' }));
});

it('lets a batch larger than one second of tokens through only from a full bucket', () => {
  let t = 0;
  const rl = new RateLimiter(10, 'signing', () => t);
  rl.take('a', 50); // full bucket: allowed, goes into debt
  expect(() => rl.take('a', 1)).toThrow();
  t = 5;
  rl.take('a', 1);
});
