//! What each command does.

use std::path::{Path, PathBuf};

use merklog_merkle::{LeafIndex, TreeSize, hash_leaf};
use merklog_note::{MAX_NOTE_SIZE, MAX_PROOF_SIZE, keyfile};
use serde_json::json;

use super::append::append;
use super::context::{Context, count, finish};
use super::input::read_file;
use super::output::{
    checkpoint_json, entry_json, entry_text, print_json, print_line, progress_bar, write_verified,
};
use super::{
    AuditArgs, CheckpointArgs, Cli, Command, ConsistencyArgs, FsckArgs, HealthArgs, KeyCommand,
    KeyGenerateArgs, ProveArgs, ProveFormat, SourceCommand, SourceKeyCommand, VerifyArgs,
    WatchArgs,
};
use crate::encoding::b64;
use crate::error::human_duration;
use crate::state::write_atomically;
use crate::{Client, ClientError, ClientTls, SignedCheckpoint, WatchOptions, offline, parse_hash};

/// Entry files given to `verify` and `prove --entry` larger than this are refused.
const MAX_ENTRY_FILE_LEN: u64 = 16 << 20;

/// Runs one command.
pub(super) async fn execute(cli: Cli) -> Result<(), ClientError> {
    let context = Context {
        server: cli.server,
        log_key: cli.log_key,
        policy: cli.policy,
        state_file: cli.state_file,
        no_state: cli.no_state,
        json: cli.json,
        tls: ClientTls {
            ca_cert: cli.ca_cert,
            client_cert: cli.client_cert,
            client_key: cli.client_key,
        },
        token_file: cli.token_file,
        connect_timeout: cli.connect_timeout,
        timeout: cli.timeout,
        retries: cli.retries,
        retry_for: cli.retry_for,
    };
    match cli.command {
        Command::Key(KeyCommand::Generate(args)) => key_generate(&context, args),
        Command::Verify(args) => verify(&context, args),
        Command::Append(args) => append(&context, args).await,
        Command::Checkpoint(args) => checkpoint(&context, args).await,
        Command::Prove(args) => prove(&context, args).await,
        Command::Consistency(args) => consistency(&context, args).await,
        Command::Watch(args) => watch(&context, args).await,
        Command::Audit(args) => audit(&context, args).await,
        Command::Health(args) => health(&context, args).await,
        Command::Fsck(args) => fsck(&context, args).await,
        Command::Source(SourceCommand::Key(SourceKeyCommand::Generate(args))) => key_generate(
            &context,
            KeyGenerateArgs {
                name: args.name,
                key_file: args.out,
                witness: false,
            },
        ),
        Command::Source(SourceCommand::Status(args)) => {
            super::source::status(context.session()?, args).await
        }
        Command::Source(SourceCommand::Audit(args)) => {
            super::source::audit(context.session()?, args).await
        }
        Command::Emit(args) => super::emit::execute(context.session()?, args).await,
        Command::Evidence(super::EvidenceCommand::Export(args)) => {
            super::evidence::export(&context, args).await
        }
        Command::Evidence(super::EvidenceCommand::Verify(args)) => {
            super::evidence::verify(&context, args)
        }
        Command::Query(args) => super::query::execute(context.session()?, args).await,
        Command::Alerts(super::AlertsCommand::Watch(args)) => {
            super::alerts::watch(&context, args).await
        }
    }
}

/// A file name made from a key name.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn key_generate(context: &Context, args: KeyGenerateArgs) -> Result<(), ClientError> {
    let key_file = args
        .key_file
        .unwrap_or_else(|| PathBuf::from(format!("{}.key", file_stem(&args.name))));
    let vkey_file = key_file.with_extension("vkey");
    if vkey_file.exists() {
        return Err(ClientError::Input(format!(
            "{} already exists; not overwriting it",
            vkey_file.display()
        )));
    }
    if let Some(parent) = key_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ClientError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let bad_key = |e: merklog_note::NoteError| ClientError::Input(format!("key: {e}"));
    let (signer, vkey) = if args.witness {
        merklog_note::generate_cosigner(&args.name).map_err(bad_key)?
    } else {
        merklog_note::generate_ed25519(&args.name).map_err(bad_key)?
    };
    keyfile::write_signer_key(&key_file, &signer).map_err(|e| match e {
        merklog_note::NoteError::KeyFileIo { path, source } => ClientError::Io { path, source },
        other => bad_key(other),
    })?;
    let io = |source| ClientError::Io {
        path: vkey_file.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&vkey_file)
        .map_err(io)?;
    std::io::Write::write_all(&mut file, format!("{vkey}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    if context.json {
        print_json(&json!({
            "name": args.name,
            "kind": if args.witness { "witness" } else { "log" },
            "vkey": vkey,
            "key_file": key_file,
            "vkey_file": vkey_file,
        }));
    } else {
        print_line(&format!(
            "wrote the signer key to {} (mode 0600: keep it secret)",
            key_file.display()
        ));
        print_line(&format!(
            "wrote the verifier key to {}:",
            vkey_file.display()
        ));
        print_line(&vkey);
    }
    Ok(())
}

fn verify(context: &Context, args: VerifyArgs) -> Result<(), ClientError> {
    // Offline by construction: nothing here builds a client or a socket.
    let proof = read_file(&args.proof, MAX_PROOF_SIZE as u64)?;
    let entry = read_file(&args.entry, MAX_ENTRY_FILE_LEN)?;
    let key = context.log_key()?;
    let policy = context.policy()?;
    let verified = match offline::verify_proof_file(&proof, &entry, key.as_ref(), policy.as_ref()) {
        Ok(verified) => verified,
        Err(error) => {
            // A text editor or `echo` adds a final newline that the logged event
            // did not have; say so when that is the only difference.
            let trimmed = entry
                .strip_suffix(b"\r\n")
                .or_else(|| entry.strip_suffix(b"\n"));
            if let Some(trimmed) = trimmed.filter(|_| error.is_verification_failure())
                && let Ok(without) =
                    offline::verify_proof_file(&proof, trimmed, key.as_ref(), policy.as_ref())
            {
                eprintln!(
                    "merklog: hint: {} ends with a newline, which is part of the entry's bytes; \
                     without it, the entry verifies at index {}. Write entry files without the \
                     final newline (e.g. printf '%s' ...)",
                    args.entry.display(),
                    without.index
                );
            }
            return Err(error);
        }
    };
    let checkpoint = &verified.checkpoint;
    if context.json {
        print_json(&json!({
            "ok": true,
            "index": verified.index,
            "leaf_hash": verified.leaf_hash.to_string(),
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root.to_string(),
            "witness_quorum": policy.is_some(),
        }));
    } else {
        print_line(&format!(
            "OK: the entry (leaf hash {}) is at index {} of {}, in the signed tree of size {} (root {}){}",
            verified.leaf_hash,
            verified.index,
            checkpoint.origin,
            checkpoint.size,
            checkpoint.root,
            if policy.is_some() {
                ", cosigned by the policy's witness quorum"
            } else {
                ""
            }
        ));
    }
    Ok(())
}

async fn checkpoint(context: &Context, args: CheckpointArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let previous = client.latest().cloned();
    let result = client.checkpoint().await;
    let checkpoint = finish(&mut client, result)?;
    if let Some(out) = &args.out {
        write_atomically(out, checkpoint.note())?;
    }
    if context.json {
        let mut value = checkpoint_json(&checkpoint);
        value["note"] = json!(checkpoint.note_text());
        value["previous_size"] = json!(previous.as_ref().map(|p| p.size().0));
        print_json(&value);
    } else {
        print_line(&format!("verified checkpoint: {}", checkpoint.summary()));
        let history = match &previous {
            None => "first checkpoint of this log seen here; remembered from now on".to_owned(),
            Some(p) if p.size() == checkpoint.size() => {
                format!(
                    "unchanged since the last verified checkpoint (size {})",
                    p.size().0
                )
            }
            Some(p) => format!(
                "consistent with the last verified checkpoint (size {}): consistency proof verified",
                p.size().0
            ),
        };
        print_line(&history);
        print_line("");
        print!("{}", checkpoint.note_text());
    }
    Ok(())
}

async fn prove(context: &Context, args: ProveArgs) -> Result<(), ClientError> {
    if context.json && args.out.as_deref() == Some(Path::new("-")) {
        return Err(ClientError::Input(
            "--json with --out -: stdout would carry both the proof file and the JSON; write \
             the proof to a file (--out FILE) to get the JSON result"
                .into(),
        ));
    }
    let leaf_hash = match (&args.hash, &args.entry) {
        (Some(hash), _) => Some(parse_hash(hash)?),
        (None, Some(file)) => Some(hash_leaf(&read_file(file, MAX_ENTRY_FILE_LEN)?)),
        (None, None) => None,
    };
    if args.format == ProveFormat::Cose {
        return super::receipt::prove_cose(context, args, leaf_hash).await;
    }
    let mut client = context.connect().await?;
    let result = match (leaf_hash, args.index) {
        (Some(hash), _) => client.prove_leaf_hash(&hash).await,
        (None, Some(index)) => client.prove_index(LeafIndex(index)).await,
        (None, None) => Err(ClientError::Input(
            "name the entry: INDEX, --hash or --entry".into(),
        )),
    };
    let receipt = finish(&mut client, result)?;
    let bytes = receipt.tlog_proof().to_bytes();
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("{}.tlog-proof", receipt.index.0)));
    let mut value = checkpoint_json(&receipt.checkpoint);
    value["index"] = json!(receipt.index.0);
    value["leaf_hash"] = json!(receipt.leaf_hash.to_string());
    let verified = format!(
        "entry {} (leaf hash {}) is in {}: inclusion proof verified",
        receipt.index.0,
        receipt.leaf_hash,
        receipt.checkpoint.summary(),
    );
    write_verified(context.json, &out, &bytes, &verified, value, "proof_file")?;
    Ok(())
}

/// A checkpoint named on the command line: a tree size or a signed note file.
async fn resolve_checkpoint(
    client: &mut Client,
    spec: &str,
) -> Result<SignedCheckpoint, ClientError> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let size: u64 = spec
            .parse()
            .map_err(|_| ClientError::Input(format!("tree size {spec} is too large")))?;
        return client.checkpoint_at(TreeSize(size)).await;
    }
    let note = read_file(Path::new(spec), MAX_NOTE_SIZE as u64)?;
    let checkpoint = client.trust().open(&note)?;
    client.observe(&checkpoint, false).await?;
    Ok(checkpoint)
}

async fn consistency(context: &Context, args: ConsistencyArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let result = async {
        let old = resolve_checkpoint(&mut client, &args.old).await?;
        let new = match &args.new {
            Some(spec) => resolve_checkpoint(&mut client, spec).await?,
            None => client.checkpoint().await?,
        };
        if old.size() > new.size() {
            return Err(ClientError::Input(format!(
                "OLD (size {}) is larger than NEW (size {})",
                old.size().0,
                new.size().0
            )));
        }
        let proof = client.prove_consistency(&old, &new).await?;
        Ok((old, new, proof))
    }
    .await;
    let (old, new, proof) = finish(&mut client, result)?;
    if context.json {
        print_json(&json!({
            "ok": true,
            "old": checkpoint_json(&old),
            "new": checkpoint_json(&new),
            "proof": proof.iter().map(|h| b64(h.as_bytes())).collect::<Vec<_>>(),
        }));
    } else {
        print_line(&format!(
            "consistent: size {} (root {}) is a prefix of size {} (root {}); proof of {} hashes verified",
            old.size().0,
            old.root(),
            new.size().0,
            new.root(),
            proof.len()
        ));
    }
    Ok(())
}

async fn watch(context: &Context, args: WatchArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let deadline = args.stop_after.map(|t| tokio::time::Instant::now() + t);
    let options = WatchOptions {
        from: args.from,
        resume: !args.no_resume,
        reconnect: !args.no_reconnect,
    };
    let mut watch = client.watch_with(options).await?;
    watch.on_reconnect(|notice| {
        eprintln!(
            "merklog: watch: {}; reconnecting in {} (attempt {}), then carrying on from the last \
             verified checkpoint",
            notice.reason,
            human_duration(notice.delay),
            notice.attempt
        );
    });
    let mut updates = 0u64;
    let outcome = loop {
        if args.max_updates.is_some_and(|max| updates >= max) {
            break Ok(());
        }
        let next = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, watch.next()).await {
                Ok(next) => next,
                Err(_) => break Ok(()),
            },
            None => watch.next().await,
        };
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => {
                break Err(ClientError::rpc(
                    "WatchCheckpoints",
                    tonic::Status::unavailable("the server ended the checkpoint stream"),
                ));
            }
            Err(e) => break Err(e),
        };
        if !event.initial {
            updates += 1;
        }
        let checkpoint = &event.checkpoint;
        if context.json {
            let mut value = checkpoint_json(checkpoint);
            value["event"] = json!("checkpoint");
            value["initial"] = json!(event.initial);
            value["first_index"] = json!(event.first_index);
            print_json(&value);
        } else {
            let note = match (event.initial, event.entries.is_empty()) {
                (true, true) => " (current)".to_owned(),
                (true, false) => format!(
                    " (current; the {} from index {} verified)",
                    count(event.entries.len() as u64, "entry", "entries"),
                    event.first_index
                ),
                (false, _) => " (consistent, entries verified)".to_owned(),
            };
            print_line(&format!("checkpoint {}{note}", checkpoint.summary()));
        }
        if !args.no_entries {
            for (index, entry) in (event.first_index..).zip(&event.entries) {
                if context.json {
                    print_json(&entry_json(index, entry));
                } else {
                    print_line(&format!("entry {index} {}", entry_text(entry)));
                }
            }
        }
        if let Err(e) = watch.save_state() {
            break Err(e);
        }
    };
    drop(watch);
    finish(&mut client, outcome)
}

async fn audit(context: &Context, _args: AuditArgs) -> Result<(), ClientError> {
    let mut client = context.connect().await?;
    let bar = progress_bar(Some(0), "entries");
    let result = client
        .audit(|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let report = finish(&mut client, result)?;
    let checkpoint = &report.checkpoint;
    if context.json {
        let mut value = checkpoint_json(checkpoint);
        value["ok"] = json!(true);
        value["entries"] = json!(report.entries);
        print_json(&value);
    } else {
        print_line(&format!(
            "audit OK: {} entries rebuild the signed root of {}",
            report.entries,
            checkpoint.summary()
        ));
    }
    Ok(())
}

/// `merklog health`: SERVING is success; any other answer is [`ClientError::NotServing`].
async fn health(context: &Context, _args: HealthArgs) -> Result<(), ClientError> {
    let options = context.client_options()?;
    match crate::health::check_health(&context.server, &options).await? {
        crate::health::Serving::Serving => {
            if context.json {
                print_json(&json!({"ok": true, "status": "SERVING"}));
            } else {
                print_line("SERVING");
            }
            Ok(())
        }
        crate::health::Serving::Not(status) => Err(ClientError::NotServing {
            server: context.server.clone(),
            status,
        }),
    }
}

/// `merklog fsck`: every tile served at --server against the entry bundles.
async fn fsck(context: &Context, _args: FsckArgs) -> Result<(), ClientError> {
    let trust = context.trust()?;
    let ca_cert = match &context.tls.ca_cert {
        Some(path) => Some(read_file(path, MAX_ENTRY_FILE_LEN)?),
        None => None,
    };
    let bar = progress_bar(Some(0), "entries");
    let result = crate::fsck::fsck_tiles(
        &context.server,
        &trust,
        ca_cert.as_deref(),
        context.timeout,
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )
    .await;
    bar.finish_and_clear();
    let report = result?;
    if context.json {
        let mut value = checkpoint_json(&report.checkpoint);
        value["ok"] = json!(true);
        value["bundles"] = json!(report.bundles);
        value["tiles"] = json!(report.tiles);
        print_json(&value);
    } else {
        print_line(&format!(
            "fsck OK: {} entry bundles and {} hash tiles rebuild the signed root of {}",
            report.bundles,
            report.tiles,
            report.checkpoint.summary()
        ));
    }
    Ok(())
}
