//! An S3-compatible server for tests and benchmarks: s3s-fs serving a
//! temporary folder on a free port of 127.0.0.1, in this process, checking
//! every request's SigV4 signature; stopped when dropped. Shared by the
//! integration tests and `host/benches/s3.rs`.

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "loktar-test";
/// Its secret key: a canary that must never appear in any output.
pub const SECRET_KEY: &str = "canary-secret-0f3c9a";

/// An S3 server on a free port of 127.0.0.1, serving a temporary folder.
pub struct S3Server {
    pub endpoint: String,
    pub root: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// Starts a server holding the (empty) `buckets`.
    pub fn start(buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        for bucket in buckets {
            std::fs::create_dir_all(root.path().join(bucket)).expect("bucket folder");
        }
        let folder = root.path().to_path_buf();
        let (address_sender, address) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
            runtime.block_on(async move {
                use hyper_util::rt::{TokioExecutor, TokioIo};
                let mut builder =
                    s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(&folder).expect("s3s-fs"));
                builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                let service = builder.build();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                address_sender.send(listener.local_addr().expect("address")).expect("send address");
                let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let mut stopped = stopped;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let connection = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                            tokio::spawn(async move { let _ = connection.await; });
                        }
                        _ = &mut stopped => break,
                    }
                }
            });
        });
        let address = address.recv().expect("the server started");
        S3Server { endpoint: format!("http://{address}"), root, stop: Some(stop), thread: Some(thread) }
    }

    /// An independent client of this server: the aws-sdk-s3 crate, used directly.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The bytes of an object, read back through the independent client.
    pub fn read(&self, bucket: &str, key: &str) -> Vec<u8> {
        let client = self.client();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        runtime.block_on(async {
            let object = client.get_object().bucket(bucket).key(key).send().await.expect("get the object");
            object.body.collect().await.expect("read the body").into_bytes().to_vec()
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
