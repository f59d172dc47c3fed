// Type-checked by tests/clients/test_generated_clients.py against the types openapi-typescript
// generates from openapi.yaml: what an app writes with openapi-fetch must compile under --strict.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

const client = createClient<paths>({ baseUrl: "http://localhost:8080" });

// TokenPair.user is discriminated by user_type: each branch sees its own profile.
export function shownName(pair: Schemas["TokenPair"]): string {
  const user = pair.user;
  switch (user.user_type) {
    case "customer":
      return user.display_name ?? (user.linked.phone ? "phone" : "anonymous");
    case "mitra":
      return user.display_name;
    case "cc":
      return user.email;
    default:
      return "unknown"; // docs/api.md: an unknown value is not a crash
  }
}

// The error body is typed: the code enum and its extras.
export async function accept(id: string, token: string): Promise<string> {
  const { data, error } = await client.POST("/api/mitra/chat-sessions/{id}/accept", {
    params: { path: { id } },
    headers: { Authorization: `Bearer ${token}` },
  });
  if (data) {
    const status: Schemas["SessionStatus"] = data.status;
    return status;
  }
  if (error) {
    const code: Schemas["ErrorCode"] = error.error.code;
    if (code === "AT_CAPACITY") {
      return `${error.error.used ?? 0}/${error.error.max ?? 0}`;
    }
    return error.error.current_status ?? code;
  }
  return "no body";
}

// A system message's detail has its fields, and end_reason is the one EndReason type.
export function deadline(message: Schemas["ChatMessage"]): string | undefined {
  const reason: Schemas["EndReason"] | null | undefined = message.detail?.end_reason;
  return message.detail?.payment_deadline_at ?? message.detail?.expires_at ?? reason ?? undefined;
}

export async function openChats(token: string): Promise<number> {
  const { data } = await client.GET("/api/client/chat-sessions", {
    params: { query: { view: "open" } },
    headers: { Authorization: `Bearer ${token}` },
  });
  const ended: Schemas["EndReason"] | null | undefined = data?.sessions[0]?.end_reason;
  return (data?.sessions.length ?? 0) + (ended ? 1 : 0);
}
