// `/`: the WASM from where the bundler put it (Turbopack resolves the glue's
// `new URL('sockline_bg.wasm', import.meta.url)` and serves it from /_next/static/media/).
import { LivePage } from './live-page';

export default async function Page({ searchParams }: { searchParams: Promise<{ user?: string }> }) {
  const { user = 'alice' } = await searchParams;
  return <LivePage user={user} />;
}
