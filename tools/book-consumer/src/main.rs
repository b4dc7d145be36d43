//! `book-consumer`: reads the depth topic from any offset and keeps every symbol's order book by
//! the consumer contract (the library), printing the top of each book as it changes (at most once
//! a second per symbol, and at every snapshot).
//!
//! ```text
//! book-consumer --broker 127.0.0.1:9092 --topic ohlcv_raw [--from beginning|end|<offset>] [--for <secs>]
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use book_consumer::{Books, Step};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

struct Args {
    broker: String,
    topic: String,
    from: Offset,
    run_for: Option<Duration>,
}

fn args() -> Result<Args, String> {
    let mut a = Args { broker: "127.0.0.1:9092".into(), topic: "ohlcv_raw".into(), from: Offset::End, run_for: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--broker" => a.broker = value()?,
            "--topic" => a.topic = value()?,
            "--from" => {
                a.from = match value()?.as_str() {
                    "beginning" => Offset::Beginning,
                    "end" => Offset::End,
                    n => Offset::Offset(n.parse().map_err(|_| format!("--from {n}: beginning, end or an offset"))?),
                }
            }
            "--for" => a.run_for = Some(Duration::from_secs(value()?.parse().map_err(|_| "--for: seconds")?)),
            "-h" | "--help" => {
                println!("book-consumer --broker HOST:PORT --topic TOPIC [--from beginning|end|OFFSET] [--for SECS]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() {
    let a = args().unwrap_or_else(|e| {
        eprintln!("book-consumer: {e}");
        std::process::exit(64);
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.broker)
        .set("group.id", "book-consumer")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| {
            eprintln!("book-consumer: {e}");
            std::process::exit(1);
        });
    let md = consumer.fetch_metadata(Some(&a.topic), Duration::from_secs(10)).expect("topic metadata");
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(&a.topic, p, a.from).expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut books = Books::default();
    let mut printed: HashMap<String, Instant> = HashMap::new();
    while a.run_for.is_none_or(|d| started.elapsed() < d) {
        let Some(msg) = consumer.poll(Duration::from_millis(500)) else { continue };
        let Ok(m) = msg else { continue };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default()) else { continue };
        let step = match books.apply(&record) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("book-consumer: offset {}: {e}", m.offset());
                continue;
            }
        };
        let Some(symbol) = record["symbol"].as_str() else { continue };
        let due = printed.get(symbol).is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        match (step, books.get(symbol)) {
            (Step::Snapshot, Some(b)) | (Step::Applied, Some(b)) if due || step == Step::Snapshot => {
                let (bid, ask) = b.top();
                let show = |l: Option<&(String, String)>| l.map_or("-".into(), |(p, q)| format!("{p} x {q}"));
                println!("{symbol} {} bid {} | ask {}", b.last_update_id, show(bid), show(ask));
                printed.insert(symbol.to_string(), Instant::now());
            }
            (Step::Dropped, _) => println!("{symbol} book dropped: waiting for a snapshot"),
            _ => {}
        }
    }
}
