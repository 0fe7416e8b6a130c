//! Hints for failures whose cause is known: Azure AD's AADSTS codes, Google STS errors, IAM
//! permission errors and certificate problems. Each names the likely cause and what to try.

/// A hint for an Azure AD error code (the number after `AADSTS`).
pub fn aadsts(code: u64) -> Option<&'static str> {
    Some(match code {
        700016 => "the application (client id) is not registered in this tenant: check --client-id and --tenant-id, and that the app was not deleted",
        7000215 => "the client secret is wrong or expired: make a new secret under Certificates & secrets and update the secret file",
        7000222 => "the client secret has expired: make a new one under Certificates & secrets",
        700024 => "the client assertion is outside its valid time range: check this machine's clock (timedatectl) and --lifetime",
        700027 => "the assertion's signature or certificate thumbprint is not registered for the app: upload the certificate (wif-inspect --cert CERT shows its thumbprint) under Certificates & secrets",
        700023 => "the assertion's audience is wrong: it must be the exact token endpoint (check --authority and --tenant-id)",
        70011 => "the scope is invalid: for client credentials use RESOURCE/.default, e.g. api://APP_ID/.default",
        500011 => "the resource (scope or --resource) is not found in the tenant: check the Application ID URI and that its service principal exists in this tenant",
        50196 => "Azure AD detected a request loop: the same request was sent too often; refresh less frequently",
        90002 | 900023 => "the tenant id is not valid or does not exist: check --tenant-id",
        700025 => "this is a public client; client assertions need a confidential app registration",
        7000218 => "the request body must contain client_assertion or client_secret",
        _ => return None,
    })
}

/// A hint for a Google STS OAuth error, read from the error and its description.
pub fn sts(error: &str, description: &str) -> Option<String> {
    let d = description.to_ascii_lowercase();
    let h = if error == "invalid_target"
        || d.contains("pool") && (d.contains("disabled") || d.contains("not found") || d.contains("deleted"))
    {
        "the workload identity pool or provider does not exist, is disabled or deleted: check --audience (gcloud iam workload-identity-pools providers describe …)"
    } else if error == "invalid_scope" {
        "the scope is not valid for STS: use https://www.googleapis.com/auth/cloud-platform"
    } else if d.contains("audience") && (d.contains("format") || d.contains("invalid value")) {
        "the audience must look like //iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER (a project number, not the project id)"
    } else if d.contains("audience") {
        "the subject token's `aud` is not an allowed audience of the provider: compare `wif-inspect` of the Azure token with the provider's allowed audiences (by default the provider's full resource name)"
    } else if d.contains("issuer") || d.contains("iss ") {
        "the subject token's `iss` does not match the provider's issuer URI: v1 Azure tokens use https://sts.windows.net/TENANT/, v2 tokens https://login.microsoftonline.com/TENANT/v2.0"
    } else if d.contains("attribute condition") || d.contains("condition") {
        "the provider's attribute condition rejected the token's mapped attributes: check the condition against the token's claims (wif-inspect)"
    } else if d.contains("expired") || d.contains("stale") || d.contains("exp") && d.contains("time") {
        "the subject token has expired: run the pipeline from the start (wif-azure) and check this machine's clock"
    } else if d.contains("signature") || d.contains("jwk") || d.contains("key") {
        "STS could not verify the token's signature with the issuer's published keys: check the provider's issuer URI (and any uploaded JWKS)"
    } else if error == "invalid_request" {
        "a required field is missing or malformed: check --audience, --subject-token-type and the subject token"
    } else {
        return None;
    };
    Some(h.to_string())
}

/// The principal string IAM sees for a federated subject, from the STS audience and the
/// subject token's `sub` (only for workload identity pools).
pub fn principal_for(audience: &str, sub: &str) -> Option<String> {
    let rest = audience.strip_prefix("//iam.googleapis.com/")?;
    let pool_part = rest.split("/providers/").next()?;
    if !pool_part.contains("/workloadIdentityPools/") {
        return None;
    }
    Some(format!("principal://iam.googleapis.com/{pool_part}/subject/{sub}"))
}

/// A hint for IAM `PERMISSION_DENIED` on impersonation.
pub fn iam_permission_denied(service_account: &str, principal: Option<&str>) -> String {
    let who = principal.unwrap_or("principal://iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/subject/SUBJECT");
    format!(
        "the federated principal may not impersonate {service_account}: grant it roles/iam.workloadIdentityUser: gcloud iam service-accounts add-iam-policy-binding {service_account} --role=roles/iam.workloadIdentityUser --member=\"{who}\" (and check the service account exists)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_hints() {
        for c in [700016, 7000215, 700024, 700027, 70011, 500011, 50196] {
            assert!(aadsts(c).is_some(), "{c}");
        }
        assert!(aadsts(1).is_none());
    }

    #[test]
    fn sts_hints_by_description() {
        assert!(sts("invalid_grant", "The audience in ID Token [x] does not match the expected audience.")
            .unwrap()
            .contains("allowed audience"));
        assert!(sts("invalid_grant", "The issuer in ID Token does not match").unwrap().contains("iss"));
        assert!(sts("invalid_grant", "The given credential is rejected by the attribute condition.")
            .unwrap()
            .contains("condition"));
        assert!(sts("invalid_grant", "ID Token issued at 1 has expired").unwrap().contains("expired"));
        assert!(sts("invalid_request", "Invalid value for \"audience\". This value should be the full resource name")
            .unwrap()
            .contains("PROJECT_NUMBER"));
        assert!(sts("invalid_target", "The target service indicated by the \"audience\" parameters is invalid.")
            .unwrap()
            .contains("does not exist"));
    }

    #[test]
    fn principal_from_audience_and_sub() {
        let aud = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/azure";
        assert_eq!(
            principal_for(aud, "abc").unwrap(),
            "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/subject/abc"
        );
        assert!(principal_for("nonsense", "abc").is_none());
    }
}
