//! The README's native example: connect, listen, send, request, disconnect.
//!
//! Run a server and get a token, then:
//! `TOKEN=$(curl -s 'http://127.0.0.1:8080/dev/token?user=alice' | sed 's/.*"token":"\([^"]*\)".*/\1/') cargo run --example client`

use sockline::events::NewNotification;
use sockline::native::{Client, ClientConfig, Notice};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(
        // or ClientConfig::with_token_provider(url, || async { … }) for expiring tokens
        ClientConfig::new("ws://127.0.0.1:8080/ws", std::env::var("TOKEN")?).room("chat:7"),
    );
    let _typed = client.on::<NewNotification>(|n| println!("{}: {}", n.id, n.title));
    let _by_name = client.on_event("new_message", |data| println!("{data}"));
    let _notices = client.on_notice(|n| {
        if let Notice::ResumeFailed = n {
            println!("events may have been missed: refetch");
        }
    });
    let id = client.send("message", serde_json::json!({"chat_id": "7", "text": "hi"}))?;
    let unread = client
        .request("get_unread_count", serde_json::json!({}))
        .await?; // Some({"count": N})
    println!("sent {id}, unread {unread:?}, {:?}", client.stats());
    client.disconnect().await;
    Ok(())
}
