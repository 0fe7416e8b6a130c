//! The Cloud Storage part of the emulator's configuration (`google.storage`): buckets, their
//! objects and their IAM bindings, and the predefined roles with the permissions they grant.

use crate::core::error::{Error, Result};
use crate::protocol::boundary::is_bucket_name;
use serde::Deserialize;
use std::collections::HashSet;

/// `google.storage`: the emulated buckets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The buckets.
    #[serde(default)]
    pub buckets: Vec<BucketConfig>,
    /// When the configuration was loaded, Unix microseconds: every object's generation.
    #[serde(skip)]
    pub generation: i64,
}

/// One bucket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Bucket name (3–63 characters: lowercase letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The bucket's IAM policy.
    #[serde(default)]
    pub iam: Vec<BucketBinding>,
    /// Its objects, in name order once loaded (as listings walk them).
    #[serde(default)]
    pub objects: Vec<ObjectConfig>,
}

/// One IAM binding on a bucket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketBinding {
    /// A predefined Cloud Storage role.
    pub role: Role,
    /// Members: `serviceAccount:EMAIL`.
    pub members: Vec<String>,
}

/// One object.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectConfig {
    /// Object name (any UTF-8, `/` included).
    pub name: String,
    /// Its content, as text.
    #[serde(default)]
    pub content: String,
    /// Its content type [default: application/octet-stream].
    #[serde(default)]
    pub content_type: Option<String>,
    /// `content_type` or the default, kept for the life of the process (answers need a
    /// `&'static str`; the configuration lives as long).
    #[serde(skip)]
    pub media_type: &'static str,
    /// `md5Hash` (base64).
    #[serde(skip)]
    pub md5: String,
    /// `crc32c` (base64).
    #[serde(skip)]
    pub crc32c: String,
}

/// A Cloud Storage permission the emulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// `storage.objects.get`
    ObjectsGet,
    /// `storage.objects.list`
    ObjectsList,
    /// `storage.objects.create`
    ObjectsCreate,
    /// `storage.objects.delete`
    ObjectsDelete,
    /// `storage.objects.update`
    ObjectsUpdate,
    /// `storage.buckets.get`
    BucketsGet,
    /// `storage.buckets.list`, `create`, `delete`, `update`, IAM policy: what only admins hold.
    BucketsAdmin,
}

impl Permission {
    /// The permission's name, as IAM spells it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::ObjectsGet => "storage.objects.get",
            Permission::ObjectsList => "storage.objects.list",
            Permission::ObjectsCreate => "storage.objects.create",
            Permission::ObjectsDelete => "storage.objects.delete",
            Permission::ObjectsUpdate => "storage.objects.update",
            Permission::BucketsGet => "storage.buckets.get",
            Permission::BucketsAdmin => "storage.buckets.update",
        }
    }
}

/// A predefined Cloud Storage role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Role {
    /// `roles/storage.objectViewer`
    ObjectViewer,
    /// `roles/storage.objectCreator`
    ObjectCreator,
    /// `roles/storage.objectUser`
    ObjectUser,
    /// `roles/storage.objectAdmin`
    ObjectAdmin,
    /// `roles/storage.legacyObjectReader`
    LegacyObjectReader,
    /// `roles/storage.legacyBucketReader`
    LegacyBucketReader,
    /// `roles/storage.admin`
    Admin,
}

/// Every role with its name.
const ROLES: &[(&str, Role)] = &[
    ("roles/storage.objectViewer", Role::ObjectViewer),
    ("roles/storage.objectCreator", Role::ObjectCreator),
    ("roles/storage.objectUser", Role::ObjectUser),
    ("roles/storage.objectAdmin", Role::ObjectAdmin),
    ("roles/storage.legacyObjectReader", Role::LegacyObjectReader),
    ("roles/storage.legacyBucketReader", Role::LegacyBucketReader),
    ("roles/storage.admin", Role::Admin),
];

impl Role {
    /// The role named `name`, if the emulator knows it.
    pub fn from_name(name: &str) -> Option<Role> {
        ROLES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
    }

    /// The names of the known roles, for error messages.
    pub fn known() -> String {
        ROLES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// Whether the role grants `p`.
    pub fn grants(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::ObjectViewer => matches!(p, ObjectsGet | ObjectsList),
            Role::ObjectCreator => p == ObjectsCreate,
            Role::ObjectUser | Role::ObjectAdmin => {
                matches!(p, ObjectsGet | ObjectsList | ObjectsCreate | ObjectsDelete | ObjectsUpdate)
            }
            Role::LegacyObjectReader => p == ObjectsGet,
            Role::LegacyBucketReader => matches!(p, ObjectsList | BucketsGet),
            Role::Admin => true,
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Role, String> {
        Role::from_name(&name).ok_or_else(|| format!("unknown role {name:?}; the emulator knows {}", Role::known()))
    }
}

impl StorageConfig {
    /// Checks names (valid and unique buckets, non-empty and unique objects, members) and
    /// computes what answers need: content types, checksums, the generation.
    pub fn prepare(&mut self) -> Result<()> {
        self.check()?;
        self.generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        for b in &mut self.buckets {
            b.objects.sort_by(|x, y| x.name.cmp(&y.name));
        }
        for o in self.buckets.iter_mut().flat_map(|b| b.objects.iter_mut()) {
            let media = o.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
            if !media.contains('/') || media.chars().any(|c| c.is_control()) {
                return Err(Error::input(format!("object {}: content_type {media:?} is not a media type", o.name)));
            }
            o.media_type = Box::leak(media.into_boxed_str());
            o.md5 = super::checksum::md5_b64(o.content.as_bytes());
            o.crc32c = super::checksum::crc32c_b64(o.content.as_bytes());
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        let mut buckets = HashSet::new();
        for b in &self.buckets {
            if !is_bucket_name(&b.name) {
                return Err(Error::input(format!(
                    "google.storage.buckets: {:?} is not a bucket name (3-63 characters: lowercase letters, digits, -, _ and ., starting and ending with a letter or digit)",
                    b.name
                )));
            }
            if !buckets.insert(b.name.as_str()) {
                return Err(Error::input(format!("google.storage.buckets: bucket {} is configured twice", b.name)));
            }
            let mut objects = HashSet::new();
            for o in &b.objects {
                if o.name.is_empty() || o.name.len() > 1024 || o.name.contains(['\r', '\n']) {
                    return Err(Error::input(format!(
                        "bucket {}: object name {:?} must be 1-1024 bytes without line breaks",
                        b.name, o.name
                    )));
                }
                if !objects.insert(o.name.as_str()) {
                    return Err(Error::input(format!("bucket {}: object {} is configured twice", b.name, o.name)));
                }
            }
            for m in b.iam.iter().flat_map(|binding| &binding.members) {
                if !m.starts_with("serviceAccount:") {
                    return Err(Error::input(format!(
                        "bucket {}: member {m:?} is not serviceAccount:EMAIL (the only members the emulator's tokens carry)",
                        b.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The bucket called `name`.
    pub fn bucket(&self, name: &str) -> Option<&BucketConfig> {
        self.buckets.iter().find(|b| b.name == name)
    }
}

impl BucketConfig {
    /// Whether the service account `email` holds a role granting `p` on this bucket.
    pub fn allows(&self, email: &str, p: Permission) -> bool {
        let is_caller = |m: &String| m.strip_prefix("serviceAccount:") == Some(email);
        self.iam.iter().any(|b| b.role.grants(p) && b.members.iter().any(is_caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for ok in ["abc", "team-a-data", "a.b_c-1", &"a".repeat(63)] {
            assert!(is_bucket_name(ok), "{ok}");
        }
        for bad in ["ab", "Team-a", "-abc", "abc-", "a b c", &"a".repeat(64), "abc/def"] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn roles_grant_their_permissions() {
        let viewer = Role::from_name("roles/storage.objectViewer").unwrap();
        assert!(viewer.grants(Permission::ObjectsGet) && viewer.grants(Permission::ObjectsList));
        assert!(!viewer.grants(Permission::ObjectsCreate));
        assert!(Role::LegacyObjectReader.grants(Permission::ObjectsGet));
        assert!(!Role::LegacyObjectReader.grants(Permission::ObjectsList));
        assert!(Role::LegacyBucketReader.grants(Permission::BucketsGet));
        assert!(!Role::ObjectCreator.grants(Permission::ObjectsGet));
        assert!(Role::Admin.grants(Permission::BucketsAdmin));
        assert!(Role::from_name("roles/storage.objectReader").is_none());
        let err = serde_json::from_str::<Role>("\"roles/owner\"").unwrap_err().to_string();
        assert!(err.contains("unknown role") && err.contains("roles/storage.objectViewer"), "{err}");
    }
}
