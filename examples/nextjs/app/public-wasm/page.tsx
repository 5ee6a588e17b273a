// `/public-wasm`: the WASM from a URL of the app's choosing (a CDN, or here public/, where
// `npm run build` copies it from node_modules/sockline), given to the provider's `wasm` prop.
import { LivePage } from '../live-page';

export default async function Page({ searchParams }: { searchParams: Promise<{ user?: string }> }) {
  const { user = 'alice' } = await searchParams;
  return <LivePage user={user} wasm="/sockline_bg.wasm" />;
}
