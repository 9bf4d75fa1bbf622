//! What a new user meets first: defaults that suit a CPU and sampling that can be reproduced.

mod common;
use common::{fixture, phi3v, run};

fn ask_json(args: &[&str]) -> serde_json::Value {
    let model = fixture("tiny-phi35v");
    let mut all = vec!["ask", "--model", &model, "--json", "--max-tokens", "6"];
    all.extend_from_slice(args);
    let out = run(&mut phi3v(&all));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sampling_without_a_seed_is_random_and_the_seed_it_used_reproduces_it() {
    let a = ask_json(&["--temperature", "1.5", "Tell me something"]);
    let b = ask_json(&["--temperature", "1.5", "Tell me something"]);
    assert_ne!(a["seed"], b["seed"], "a fresh seed each run");
    let seed = a["seed"].as_u64().unwrap().to_string();
    let again = ask_json(&["--temperature", "1.5", "--seed", &seed, "Tell me something"]);
    assert_eq!(again["tokens"], a["tokens"]);
    assert_eq!(again["seed"], a["seed"]);
}

#[test]
fn a_terminal_run_of_16_bit_weights_suggests_q4() {
    let model = fixture("tiny-phi35v");
    // `script` gives the command a terminal.
    let cmd = |flags: &str| format!("{} ask --model {model} --max-tokens 1 {flags} Hi", env!("CARGO_BIN_EXE_phi3v"));
    let tty = |flags: &str| {
        let out = run(std::process::Command::new("script").args(["-qec", &cmd(flags), "/dev/null"]).env("HF_HUB_OFFLINE", "1"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chart = fixture("../../assets/chart.png");
    let shown = tty(&format!("-i {chart}"));
    assert!(shown.contains("note: running the bf16 weights as stored; --quant q4 is ~3× faster"), "{shown}");
    // Bars for the long steps, and the line after the answer.
    for step in ["loading weights", "encoding image, crops", "reading the prompt, tokens", "757 of them image"] {
        assert!(shown.contains(step), "{step}: {shown}");
    }
    assert!(!tty("--quant q4").contains("--quant q4 is"));
    // Not on a terminal: nothing on stderr.
    let out = run(&mut phi3v(&["ask", "--model", &model, "--max-tokens", "1", "Hi"]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn chat_takes_quoted_dropped_and_home_paths_multi_line_input_and_its_commands() {
    let home = tempfile::tempdir().unwrap();
    let chart = std::fs::read(fixture("../../assets/chart.png")).unwrap();
    let spaced = home.path().join("my charts");
    std::fs::create_dir(&spaced).unwrap();
    std::fs::write(spaced.join("q 1.png"), &chart).unwrap();
    let dropped = format!("file://{}/my%20charts/q%201.png", home.path().display());
    let transcript = home.path().join("talk.json");
    let script = format!(
        "/image \"{0}/my charts/q 1.png\" '~/my charts/q 1.png' {dropped}\n\
         What is \\\nshown here?\n/stats\n/save {1}\n/system Be terse.\nHi\n/nonsense\n/exit\n",
        home.path().display(),
        transcript.display()
    );
    let out = common::chat_with_env("3", script.as_bytes(), &[("HOME", home.path().to_str().unwrap())]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("(image 3 attached"), "three paths, three images: {stderr}");
    assert!(stderr.contains("2271 of them image"), "/stats: {stderr}");
    assert!(stderr.contains("(system message set; conversation cleared)"), "{stderr}");
    for command in ["/image", "/system", "/reset", "/save", "/stats", "/help", "/exit"] {
        assert!(stderr.contains(command), "/nonsense lists {command}: {stderr}");
    }
    let messages: serde_json::Value = serde_json::from_slice(&std::fs::read(&transcript).unwrap()).unwrap();
    assert_eq!(messages[0]["content"], "<|image_1|>\n<|image_2|>\n<|image_3|>\nWhat is \nshown here?", "one message over two lines");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "two answers");
}

#[test]
fn chat_on_a_terminal_edits_lines_keeps_history_and_ends_on_ctrl_d() {
    let state = tempfile::tempdir().unwrap();
    let model = fixture("tiny-phi35v");
    let cmd = format!("{} chat --model {model} --max-tokens 2", env!("CARGO_BIN_EXE_phi3v"));
    // Typed slowly into a terminal: a line with a typo fixed by backspace, then Ctrl-D.
    let typed = "sleep 1; printf 'Hellp\\177o there\\r'; sleep 2; printf '\\004'";
    let out = run(std::process::Command::new("sh")
        .args(["-c", &format!("({typed}) | script -qec '{cmd}' /dev/null")])
        .env("XDG_STATE_HOME", state.path())
        .env("HF_HUB_OFFLINE", "1"));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("/help") && screen.contains("cut at --max-tokens 2"), "{screen}");
    let history = std::fs::read_to_string(state.path().join("phi3v/chat-history")).unwrap();
    assert!(history.lines().any(|l| l == "Hello there"), "{history}");
}

#[test]
fn short_flags_prompts_from_files_and_stdin_stop_strings_and_stats() {
    use std::io::Write;
    let model = fixture("tiny-phi35v");
    let chart = fixture("../../assets/chart.png");
    let question = "Which quarter had the highest revenue?";
    let reference = ask_json(&["--image", &chart, question]);
    // Short flags, the model from PHI3V_MODEL, the question from a file and from stdin.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("q.txt");
    std::fs::write(&file, question).unwrap();
    let file_arg = file.to_str().unwrap();
    let from_file = run(phi3v(&["ask", "--json", "-n", "6", "-i", &chart, "-f", file_arg]).env("PHI3V_MODEL", &model));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&from_file.stdout).unwrap()["tokens"], reference["tokens"]);
    let mut child = phi3v(&["ask", "-m", &model, "--json", "-n", "6", "-i", &chart, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(question.as_bytes()).unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&from_stdin.stdout).unwrap()["tokens"], reference["tokens"]);
    // --stop ends the answer before the text; -v adds the stats line.
    let answer = reference["answer"].as_str().unwrap();
    let cut: String = answer.chars().skip(2).take(2).collect();
    let stopped = ask_json(&["--stop", &cut, "--image", &chart, question]);
    assert!(stopped["stop"].as_str().unwrap().starts_with("string"), "{stopped}");
    assert!(answer.starts_with(stopped["answer"].as_str().unwrap()) && !stopped["answer"].as_str().unwrap().contains(&cut));
    let out = run(&mut phi3v(&["ask", "-m", &model, "-n", "3", "-v", "Hi"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("prompt tokens") && stderr.contains("cut at --max-tokens 3"), "{stderr}");
    // inspect without a question; completions.
    let out = run(&mut phi3v(&["inspect", "-m", &model, "-i", &chart]));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("757 image"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(shown.contains("memory    bf16 ") && shown.contains(" MB, q8 ") && shown.contains(", q4 "), "{shown}");
    let out = run(&mut phi3v(&["completions", "bash"]));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("_phi3v()"));
    let out = run(&mut phi3v(&["manpage"]));
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(".TH phi3v 1"));
    // Every command's help ends with an example.
    for cmd in ["ask", "chat", "inspect", "bench", "eval", "pull", "list", "completions", "manpage"] {
        let out = run(&mut phi3v(&[cmd, "--help"]));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(&format!("Example:\n  phi3v {cmd}")), "{cmd}: {help}");
    }
}

/// Serves `routes` (path → raw HTTP response) on 127.0.0.1 for `requests` requests, then stops.
fn serve(routes: Vec<(&'static str, Vec<u8>)>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let response = routes.iter().find(|(p, _)| *p == path).map_or(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(), |(_, r)| r.clone());
            let _ = stream.write_all(&response);
        }
    });
    (base, handle)
}

#[test]
fn images_come_from_stdin_and_urls_within_the_limits() {
    use std::io::Write;
    let model = fixture("tiny-phi35v");
    let chart_path = fixture("../../assets/chart.png");
    let chart = std::fs::read(&chart_path).unwrap();
    let reference = ask_json(&["-i", &chart_path, "What?"]);
    let mut ok = format!("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n", chart.len()).into_bytes();
    ok.extend(&chart);
    let routes = vec![
        ("/chart.png", ok),
        ("/moved", b"HTTP/1.1 302 Found\r\nLocation: /chart.png\r\nContent-Length: 0\r\n\r\n".to_vec()),
        ("/loop", b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n".to_vec()),
        ("/big", b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n".to_vec()),
    ];
    let (base, server) = serve(routes, 2 + 6 + 1);
    for path in ["/chart.png", "/moved"] {
        let url = format!("{base}{path}");
        assert_eq!(ask_json(&["-i", &url, "What?"])["tokens"], reference["tokens"], "{path}");
    }
    let url = format!("{base}/loop");
    let out = run(&mut phi3v(&["ask", "-m", &model, "-i", &url, "What?"]));
    common::assert_clean_error(&out, "/loop");
    let url = format!("{base}/big");
    let out = run(&mut phi3v(&["ask", "-m", &model, "-i", &url, "What?"]));
    common::assert_clean_error(&out, "999999999999 bytes, more than the limit of 268435456");
    server.join().unwrap();
    // From stdin.
    let mut child = phi3v(&["ask", "-m", &model, "--json", "-n", "6", "-i", "-", "What?"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&chart).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tokens"], reference["tokens"]);
    let out = run(&mut phi3v(&["ask", "-m", &model, "-i", "-", "-"]));
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pull_and_list_go_through_the_hf_cache() {
    let hf = tempfile::tempdir().unwrap();
    let home = hf.path().to_str().unwrap();
    let out = run(phi3v(&["list"]).env("HF_HOME", home));
    assert!(out.status.success() && out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("phi3v pull"));
    phi3v_fixtures::fake_hf_home(hf.path(), "microsoft/Phi-3.5-vision-instruct", "tiny-phi35v");
    phi3v_fixtures::fake_hf_home(hf.path(), "someone/tiny-phi3v", "tiny-phi3v");
    let out = run(phi3v(&["list"]).env("HF_HOME", home));
    let listed = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("microsoft/Phi-3.5-vision-instruct") && lines[0].contains("4.5 MB on disk"), "{listed}");
    assert!(lines[1].starts_with("someone/tiny-phi3v") && lines[1].contains("q4 "), "{listed}");
    // Pull of a cached id: nothing to download, its folder printed.
    let out = run(phi3v(&["pull"]).env("HF_HOME", home));
    let folder = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success() && std::path::Path::new(&folder).join("config.json").is_file(), "{folder}");
    let out = run(phi3v(&["pull", "someone/missing"]).env("HF_HOME", home));
    common::assert_clean_error(&out, "HF_HUB_OFFLINE");
}
