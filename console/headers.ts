import type { RequestHandler } from 'express';

/**
 * The Content-Security-Policy of every console response: only the console's own
 * scripts, styles, images and API; no inline script or style element, no other
 * origin, no framing, no form posts elsewhere. (Styles set from script through
 * element.style, as Preact and uPlot do, are not inline styles in CSP's sense.)
 */
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    // the login URL carries a token: never send it on as a Referer
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  next();
};
