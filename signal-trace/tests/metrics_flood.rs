//! The metrics endpoint cannot blind the tracer: 3000 idle connections from uid 65534 against
//! a tracer limited to 1024 descriptors (as containerd gives containers) leave it tracing
//! (a SIGTERM sent meanwhile is recorded), not spinning (its CPU time over the flood is
//! printed and must stay far from a core), with bounded memory, and still serving scrapes.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = stat.rsplit(')').next().expect("comm");
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn scrape(addr: &str) -> std::io::Result<String> {
    let mut c = std::net::TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

/// A child of uid 65534 that connects `n` times to 127.0.0.1:`port`, reports how many it
/// holds, and holds them (sending nothing) until killed.
struct Flood {
    pid: i32,
    report: i32,
}

impl Flood {
    fn start(port: u16, n: u32) -> Flood {
        let mut p = [0; 2];
        // SAFETY: after fork the child only makes async-signal-safe calls (setgroups, setgid,
        // setuid, setrlimit, socket, connect, write, pause, _exit).
        unsafe {
            assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::close(p[0]);
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    libc::_exit(100);
                }
                let mut addr: libc::sockaddr_in = std::mem::zeroed();
                addr.sin_family = libc::AF_INET as libc::sa_family_t;
                addr.sin_port = port.to_be();
                addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
                let mut held: u32 = 0;
                for _ in 0..n {
                    let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    if fd < 0 {
                        break;
                    }
                    if libc::connect(
                        fd,
                        (&addr as *const libc::sockaddr_in).cast(),
                        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    ) == 0
                    {
                        held += 1;
                    } else {
                        libc::close(fd);
                    }
                }
                libc::write(p[1], (&held as *const u32).cast(), 4);
                loop {
                    libc::pause();
                }
            }
            libc::close(p[1]);
            Flood { pid, report: p[0] }
        }
    }

    fn held(&self) -> u32 {
        let mut held: u32 = 0;
        // SAFETY: 4 bytes into a u32 from our pipe.
        let n = unsafe { libc::read(self.report, (&mut held as *mut u32).cast(), 4) };
        assert_eq!(n, 4, "the flood reported");
        held
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        // SAFETY: kill and waitpid on our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            libc::close(self.report);
        }
    }
}

#[test]
fn three_thousand_idle_connections_at_nofile_1024_do_not_blind_the_tracer() {
    require_root();
    let target = spawn(Setup {
        handle: &[libc::SIGTERM],
        ..Setup::default()
    });
    let mut cmd = Command::new(BIN);
    cmd.args(["--format", "json", "--events", "generate"])
        .args(["--target-pid", &target.pid.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut tracer = cmd.spawn().expect("spawn signal-trace");
    let pid = tracer.id();
    let records = Arc::new(Mutex::new(Vec::<Value>::new()));
    let out = tracer.stdout.take().unwrap();
    let r = records.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            r.lock()
                .unwrap()
                .push(serde_json::from_str(&line).expect("JSON"));
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err = tracer.stderr.take().unwrap();
    let s = stderr.clone();
    let err_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            s.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let start = Instant::now();
    while !stderr.lock().unwrap().contains("Ctrl-C to stop") {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the tracer did not start: {}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let addr = stderr
        .lock()
        .unwrap()
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the metrics address")
        .to_string();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    assert!(nofile.contains("1024"), "{nofile}");
    let rss_before = status_kib(pid, "VmRSS:");
    let (host, port) = addr.rsplit_once(':').unwrap();

    // uid 65534 opens 3000 connections and holds them, sending nothing.
    let ticks0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let flood = Flood::start(port.parse().expect("port"), 3000);
    let held = flood.held();
    let opened = t0.elapsed();
    assert_eq!(host, "127.0.0.1");
    let fds_during = open_fds(pid);
    // A pod's SIGTERM during the flood.
    kill(target.pid, libc::SIGTERM);
    std::thread::sleep(Duration::from_secs(3));
    let scraped = scrape(&addr);
    std::thread::sleep(Duration::from_secs(2));
    let secs = t0.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (cpu_ticks(pid) - ticks0) as f64 / hz / secs;
    let rss_during = status_kib(pid, "VmRSS:");
    drop(flood);

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = tracer.wait().unwrap();
    reader.join().unwrap();
    err_reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    let seen = records
        .lock()
        .unwrap()
        .iter()
        .filter(|v| {
            is(v, "generate")
                && int(v, &["target", "pid"]) == i64::from(target.pid)
                && v["signal"] == "SIGTERM"
        })
        .count();
    println!(
        "flood: {held} connections held by uid 65534 (opened in {opened:.1?}); tracer ({nofile}): {fds_during} fds open, CPU {:.1}% of a core over {secs:.1} s, RSS {rss_before} KiB before, {rss_during} KiB during; SIGTERM records: {seen}; scrape during the flood: {}",
        cpu * 100.0,
        match &scraped {
            Ok(s) => s.lines().next().unwrap_or("").to_string(),
            Err(e) => e.to_string(),
        }
    );
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(
        seen, 1,
        "the SIGTERM sent during the flood is recorded: {stderr}"
    );
    assert!(
        fds_during < 200,
        "the tracer holds a bounded number of descriptors: {fds_during}"
    );
    assert!(
        cpu < 0.5,
        "accept errors must not spin: {:.0}% of a core",
        cpu * 100.0
    );
    assert!(
        rss_during < rss_before + 16 * 1024,
        "memory bounded: {rss_before} → {rss_during} KiB"
    );
    assert!(
        scraped
            .as_deref()
            .is_ok_and(|s| s.starts_with("HTTP/1.1 200 OK")),
        "scrapes are served again once idle connections time out: {scraped:?}"
    );
}
