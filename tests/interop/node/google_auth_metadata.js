#!/usr/bin/env node
// Google's Node.js auth library (google-auth-library, gcp-metadata), unmodified, against
// `wif-get --metadata-server`.
//
// usage: node google_auth_metadata.js   (GCE_METADATA_HOST names the server)
// Prints one JSON object: whether gcp-metadata detects a metadata server, which client
// Application Default Credentials picks, the project, token and service account it obtains
// (exit 0), or {"error": ...} (exit 1).
"use strict";
const { GoogleAuth } = require("google-auth-library");
const gcpMetadata = require("gcp-metadata");

async function main() {
  const out = { available: await gcpMetadata.isAvailable() };
  try {
    const auth = new GoogleAuth({ scopes: "https://www.googleapis.com/auth/cloud-platform" });
    const client = await auth.getClient();
    out.client = client.constructor.name;
    out.project = await auth.getProjectId();
    const { token, res } = await client.getAccessToken();
    out.token = token;
    out.expiry_date = client.credentials.expiry_date || null;
    out.token_status = res ? res.status : null;
    out.client_email = (await auth.getCredentials()).client_email;
  } catch (e) {
    out.error = e.message;
    console.log(JSON.stringify(out));
    return 1;
  }
  console.log(JSON.stringify(out));
  return 0;
}

main().then((code) => process.exit(code));
