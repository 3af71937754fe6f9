#![allow(clippy::unwrap_used, clippy::expect_used)]

use ct_codecs::Encoder as _;
use minisign::KeyPair;

use super::*;

const MANIFEST: &[u8] = b"format = 1\nbuild_id = \"b1\"\n";

struct Signer {
    pair: KeyPair,
}

impl Signer {
    fn new() -> Signer {
        Signer {
            pair: KeyPair::generate_unencrypted_keypair().expect("keypair"),
        }
    }

    fn sign(&self, data: &[u8], comment: &str) -> String {
        minisign::sign(
            Some(&self.pair.pk),
            &self.pair.sk,
            data,
            Some(comment),
            None,
        )
        .expect("sign")
        .into_string()
    }

    fn key(&self) -> TrustedKey {
        TrustedKey::from_base64(&self.pair.pk.to_base64()).expect("public key")
    }

    fn pub_file(&self) -> String {
        self.pair.pk.to_box().expect("box").into_string()
    }
}

fn trust(signers: &[&Signer]) -> TrustedKeys {
    TrustedKeys::new(signers.iter().map(|s| s.key())).expect("list")
}

#[test]
fn a_signed_manifest_verifies_with_its_key_and_gives_the_trusted_comment() {
    let k = Signer::new();
    let sig = k.sign(MANIFEST, "timestamp:1\tfile:manifest.toml\tbuild:b1");
    let verdict = verify(MANIFEST, Some(&sig), &trust(&[&k])).expect("verifies");
    assert_eq!(
        verdict,
        Verdict::Signed {
            key: k.key().id(),
            trusted_comment: "timestamp:1\tfile:manifest.toml\tbuild:b1".into()
        }
    );
    let line = verdict.describe(&trust(&[&k]));
    assert!(
        line.starts_with(&format!("signed by key ID {}", k.key().id())),
        "{line}"
    );
}

#[test]
fn key_ids_are_shown_as_minisign_shows_them() {
    let k = Signer::new();
    let id = k.key().id().to_string();
    assert_eq!(id.len(), 16);
    // The minisign crate writes "minisign public key: ID", the C program "… key ID".
    let head = k.pub_file().lines().next().unwrap_or_default().to_owned();
    assert!(
        head.starts_with("untrusted comment: minisign public key") && head.ends_with(&id),
        "{head}"
    );
    // And our rendering of a key is a .pub file minisign's own parser reads back.
    let rendered = k.key().render_pub();
    assert_eq!(
        minisign::PublicKeyBox::from_string(&rendered)
            .and_then(minisign::PublicKeyBox::into_public_key)
            .expect("minisign reads it")
            .to_base64(),
        k.pair.pk.to_base64()
    );
}

#[test]
fn an_unsigned_manifest_is_refused_by_a_card_with_keys_and_accepted_by_one_without() {
    let k = Signer::new();
    let err = verify(MANIFEST, None, &trust(&[&k])).expect_err("refused");
    assert_eq!(
        err,
        SignatureError::Unsigned {
            trusts: trust(&[&k]).ids()
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("not signed") && text.contains(&k.key().id().to_string()),
        "{text}"
    );
    assert_eq!(
        verify(MANIFEST, None, &TrustedKeys::default()),
        Ok(Verdict::Unsigned)
    );
    let sig = k.sign(MANIFEST, "c");
    assert_eq!(
        verify(MANIFEST, Some(&sig), &TrustedKeys::default()),
        Ok(Verdict::NotChecked { key: k.key().id() })
    );
}

#[test]
fn a_manifest_signed_by_another_key_is_refused_naming_both() {
    let (mine, theirs, also) = (Signer::new(), Signer::new(), Signer::new());
    let sig = theirs.sign(MANIFEST, "c");
    let err = verify(MANIFEST, Some(&sig), &trust(&[&mine, &also])).expect_err("refused");
    assert_eq!(
        err,
        SignatureError::UntrustedKey {
            key: theirs.key().id(),
            trusts: KeyIds(vec![mine.key().id(), also.key().id()]),
        }
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "signed by key ID {}, this card trusts {}, {}",
            theirs.key().id(),
            mine.key().id(),
            also.key().id()
        )),
        "{text}"
    );
}

#[test]
fn a_changed_manifest_or_trusted_comment_is_refused() {
    let k = Signer::new();
    let sig = k.sign(MANIFEST, "timestamp:1\tbuild:b1");
    let mut changed = MANIFEST.to_vec();
    changed[5] ^= 1;
    let key = k.key().id();
    assert_eq!(
        verify(&changed, Some(&sig), &trust(&[&k])),
        Err(SignatureError::Invalid { key })
    );
    // The trusted comment is covered by the global signature.
    let forged = sig.replace("build:b1", "build:b2");
    assert_ne!(forged, sig);
    assert_eq!(
        verify(MANIFEST, Some(&forged), &trust(&[&k])),
        Err(SignatureError::Invalid { key })
    );
    // The untrusted comment is not signed (minisign's design) and does not matter.
    let relabelled = sig.replacen("untrusted comment:", "untrusted comment: relabelled", 1);
    assert!(verify(MANIFEST, Some(&relabelled), &trust(&[&k])).is_ok());
}

#[test]
fn a_rotated_key_list_accepts_old_and_new_until_the_old_key_is_dropped() {
    let (old, new) = (Signer::new(), Signer::new());
    let by_old = old.sign(MANIFEST, "c");
    let by_new = new.sign(MANIFEST, "c");
    let both = trust(&[&old, &new]);
    assert!(verify(MANIFEST, Some(&by_old), &both).is_ok());
    assert!(verify(MANIFEST, Some(&by_new), &both).is_ok());
    let only_new = trust(&[&new]);
    assert!(verify(MANIFEST, Some(&by_new), &only_new).is_ok());
    assert!(matches!(
        verify(MANIFEST, Some(&by_old), &only_new),
        Err(SignatureError::UntrustedKey { .. })
    ));
}

#[test]
fn malformed_and_legacy_signatures_are_refused() {
    let k = Signer::new();
    let list = trust(&[&k]);
    for garbage in [
        "",
        "one line",
        "untrusted comment: x\n!!!!\n",
        "a\nRWQ=\nb\nc\n",
    ] {
        assert!(
            matches!(
                verify(MANIFEST, Some(garbage), &list),
                Err(SignatureError::Malformed { .. })
            ),
            "{garbage:?}"
        );
    }
    let huge = "x".repeat(SIGNATURE_MAX + 1);
    assert!(matches!(
        verify(MANIFEST, Some(&huge), &list),
        Err(SignatureError::Malformed { .. })
    ));
    // The same signature marked as legacy ("Ed" instead of "ED").
    let sig = k.sign(MANIFEST, "c");
    let mut lines: Vec<String> = sig.lines().map(str::to_owned).collect();
    let mut bin = Base64::decode_to_vec(&lines[1], None).expect("base64");
    bin[1] = b'd';
    lines[1] = ct_codecs::Base64::encode_to_string(&bin).expect("encode");
    let legacy = lines.join("\n");
    assert_eq!(
        verify(MANIFEST, Some(&legacy), &list),
        Err(SignatureError::Legacy { key: k.key().id() })
    );
}

#[test]
fn key_lists_read_concatenated_pub_files_with_comments() {
    let (a, b) = (Signer::new(), Signer::new());
    let text = format!("# the card's keys\n\n{}{}", a.pub_file(), b.pub_file());
    let list = TrustedKeys::parse(&text).expect("parses");
    assert_eq!(list.ids(), KeyIds(vec![a.key().id(), b.key().id()]));
    assert_eq!(
        TrustedKeys::parse(&list.render()).expect("round trip"),
        list
    );
    // A key given twice is kept once.
    let twice = format!("{}{}", a.pub_file(), a.pub_file());
    assert_eq!(TrustedKeys::parse(&twice).expect("parses").keys().len(), 1);
    assert!(TrustedKeys::parse("").expect("empty").is_empty());
    assert_eq!(KeyIds(Vec::new()).to_string(), "no key");
}

#[test]
fn key_lists_refuse_what_is_not_a_public_key_with_its_line() {
    let a = Signer::new();
    let secret = a.pair.sk.to_box(None).expect("box").into_string();
    let err = TrustedKeys::parse(&format!("{}{secret}", a.pub_file())).expect_err("secret");
    assert_eq!(err.line, 4, "{err}");
    assert!(err.reason.contains("42"), "{err}");
    let err = TrustedKeys::parse("# keys\nnot a key at all\n").expect_err("garbage");
    assert_eq!(err.line, 2);
    assert!(err.to_string().starts_with("line 2: not base64"), "{err}");
}
