/** The admin API's JSON shapes, as the console reads them (server/api/...). */

export interface AuthorityJSON {
  id: string;
  kind: 'x509' | 'jwt';
  state: 'prepared' | 'active' | 'retired' | 'tainted' | 'revoked';
  tainted: boolean;
  key_id: string;
  not_before: number;
  not_after: number;
  prepare_at: number | null;
  activate_at: number | null;
  upstream: boolean;
  svids: number;
}

export interface Selector {
  type: string;
  value: string;
}

export interface EntryJSON {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: Selector[];
  x509_svid_ttl: number;
  jwt_svid_ttl: number;
  dns_names: string[];
  federates_with: string[];
  hint: string;
  jwt_audiences?: string[];
  expires_at: number | null;
  revision: number;
}

export interface AgentJSON {
  spiffe_id: string;
  attestation_type: string;
  serial_number: string;
  expires_at: number;
  selectors: Selector[];
  banned: boolean;
  created_at: number;
  updated_at: number;
}

export interface FederationJSON {
  trust_domain: string;
  bundle_endpoint_url: string;
  profile: string;
  endpoint_spiffe_id?: string | null;
  last_refresh_at: number | null;
  last_error: string | null;
  bundle_sequence?: number | null;
}

export interface Overview {
  trust_domain: string;
  now: number;
  entries: number;
  agents: { total: number; banned: number; earliest_svid_expiry: { agent_id: string; expires_at: number } | null };
  last_hour: { svids_issued: number; denials: number };
  authorities: { x509: AuthorityJSON[]; jwt: AuthorityJSON[] };
  federation: FederationJSON[];
}

export interface AuditEvent {
  seq: number;
  time: string;
  event: string;
  fields: Record<string, unknown>;
}

export interface AuditSummary {
  bucket_seconds: number;
  buckets: Array<{ start: number; issued: number; denied: number }>;
  issued: number;
  denied: number;
}
