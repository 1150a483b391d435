//! Helpers shared by the integration test binaries.

use std::path::PathBuf;

/// `$DIALER_BIN`, else `<target>/<profile>/dialer`: this test runs from
/// `<target>/<profile>/deps/<test>-<hash>`.
pub fn dialer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("DIALER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DIALER_BIN={} does not exist; run `cargo build -p dialer` first",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    let path = profile.join("dialer");
    assert!(
        path.is_file(),
        "the dialer binary {} does not exist: run `cargo build -p dialer` first \
         (same profile and target dir), or set DIALER_BIN",
        path.display()
    );
    path
}
