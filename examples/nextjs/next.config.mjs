// Nothing here for sockline: Turbopack (and webpack, `next build --webpack`) resolve the glue's
// `new URL('sockline_bg.wasm', import.meta.url)` and serve the .wasm from /_next/static/media/.
/** @type {import('next').NextConfig} */
const nextConfig = {};
export default nextConfig;
