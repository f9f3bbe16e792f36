// What the server tells the page about this deployment (crabglamp/dashboard.py embeds it).

export interface PageConfig {
  auth: "development" | "clerk";
  signInUrl: string | null;
  clerkPublishableKey: string | null;
}

export function pageConfig(): PageConfig {
  const raw = document.getElementById("crabglamp-config")?.textContent;
  if (raw) {
    try {
      return JSON.parse(raw) as PageConfig;
    } catch {
      // fall through: a page served without the server's config (e.g. `vite` dev server)
    }
  }
  return { auth: "development", signInUrl: "/dev/sign-in", clerkPublishableKey: null };
}
