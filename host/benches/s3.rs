//! Benchmark: upload throughput of Loktar's `s3` object store against the
//! aws-sdk-s3 client's own upload of the same file, to the same local S3
//! server (s3s-fs in this process, SigV4 checked), in one process.
//!
//! A 200 MiB artifact of incompressible bytes. Loktar's upload is what a
//! storage plugin's `put` does: hash the file, check the bucket, upload it
//! with its SHA-256 for the server to verify — in one request below the
//! multipart threshold (the default), and, for comparison, in 16 MiB parts
//! each with its own SHA-256. The baseline is one `put_object` of the file
//! by the bare client. Rounds alternate; the figures are ratios of median
//! throughputs (Loktar ÷ baseline). Run with `cargo bench --bench s3`.

#[allow(dead_code)]
mod common;

#[path = "../../tests/cli/s3_server.rs"]
#[allow(dead_code)]
mod s3_server;

use std::time::Instant;

use common::{median, ms, noise};
use loktar::objects::ObjectStore;
use loktar::settings::{S3Settings, StoreSettings};

const SIZE: usize = 200 << 20;
const ROUNDS: usize = 5;

fn main() {
    let server = s3_server::S3Server::start(&["bench"]);
    let scratch = tempfile::tempdir().expect("temp dir");
    let file = scratch.path().join("artifact.bin");
    std::fs::write(&file, noise(SIZE, 0x2545_f491_4f6c_dd1d)).expect("write the artifact");

    let store = |multipart_threshold_mib| {
        let settings = StoreSettings::S3(S3Settings {
            bucket: "bench".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: Some(server.endpoint.clone()),
            path_style: Some(true),
            access_key_secret: "key".into(),
            secret_key_secret: "secret".into(),
            multipart_threshold_mib,
        });
        let secret =
            |name: &str| Some(if name == "key" { s3_server::ACCESS_KEY } else { s3_server::SECRET_KEY }.to_string());
        ObjectStore::open("s3", &settings, secret).expect("the store")
    };
    // Loktar's default threshold, and a low one that sends this file in parts.
    let (default, parts) = (store(S3Settings::DEFAULT_MULTIPART_THRESHOLD_MIB), store(64));
    let client = server.client();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");

    let (mut loktar, mut in_parts, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let start = Instant::now();
        let info = runtime
            .block_on(default.put(&format!("loktar/{round}.bin"), std::fs::File::open(&file).expect("open")))
            .expect("loktar upload");
        loktar.push(start.elapsed());
        assert_eq!(info.size, SIZE as u64);

        let start = Instant::now();
        runtime
            .block_on(parts.put(&format!("parts/{round}.bin"), std::fs::File::open(&file).expect("open")))
            .expect("loktar upload in parts");
        in_parts.push(start.elapsed());

        let start = Instant::now();
        runtime.block_on(async {
            let body = aws_sdk_s3::primitives::ByteStream::from_path(&file).await.expect("body");
            client
                .put_object()
                .bucket("bench")
                .key(format!("bare/{round}.bin"))
                .body(body)
                .send()
                .await
                .expect("bare upload");
        });
        bare.push(start.elapsed());
    }
    let (loktar, in_parts, bare) = (median(loktar), median(in_parts), median(bare));
    let mib = (SIZE >> 20) as f64;
    println!("upload of a {} MiB artifact to a local S3 server, median of {ROUNDS} rounds", SIZE >> 20);
    println!("  aws-sdk-s3 put_object (baseline)   {:>7.0} ms   {:>6.0} MiB/s", ms(bare), mib / bare.as_secs_f64());
    println!("  loktar put (default threshold)     {:>7.0} ms   {:>6.0} MiB/s", ms(loktar), mib / loktar.as_secs_f64());
    println!(
        "  loktar put in 16 MiB parts         {:>7.0} ms   {:>6.0} MiB/s",
        ms(in_parts),
        mib / in_parts.as_secs_f64()
    );
    println!("  throughput ratio (loktar ÷ baseline): {:.2}", bare.as_secs_f64() / loktar.as_secs_f64());
    println!("  in parts ÷ baseline:                  {:.2}", bare.as_secs_f64() / in_parts.as_secs_f64());
}
