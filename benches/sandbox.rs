//! What the sandboxed child costs per use: fork, confinement (capabilities,
//! no_new_privs, landlock with the network read paths, two seccomp filters), a reply
//! over the pipe, and the reap. Compared with a bare fork + pipe + reap.

use criterion::{criterion_group, criterion_main, Criterion};
use hardrun::sandbox::{network_read_paths, run, Confinement};

fn bare_fork() -> u32 {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        0 => unsafe { libc::_exit(7) },
        pid => {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            libc::WEXITSTATUS(status) as u32
        }
    }
}

fn sandbox(c: &mut Criterion) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("sandbox bench needs root; skipped");
        return;
    }
    let conf = Confinement { read: network_read_paths(), connect_ports: vec![5000, 443], ..Default::default() };
    let mut g = c.benchmark_group("sandbox");
    g.sample_size(50);
    g.bench_function("bare fork+wait", |b| b.iter(bare_fork));
    g.bench_function("confined child, empty work", |b| b.iter(|| run(&conf, || 7u32).unwrap().0));
    g.finish();
}

criterion_group!(benches, sandbox);
criterion_main!(benches);
