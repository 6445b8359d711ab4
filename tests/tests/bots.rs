//! Bot accounts, end to end: an admin creates one for an owner, its devices
//! carry the bot mark and the owner in their MLS credential, members see
//! both, a bot joins a channel only when a member adds it, and the relay
//! refuses a credential whose bot mark is not the account's own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use conclave_tests::ByName;
use conclave_tests::{Person, RawDevice, ServerProcess};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bots_are_marked_accounts_that_members_add() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let bob = Person::register(&server, "bob", PASSWORD).await;

    // Only for an existing owner; the password is shown once.
    let refused = std::process::Command::new(conclave_tests::workspace_binary("conclave-server"))
        .arg("--data-dir")
        .arg(server.data.path().join("data"))
        .args(["admin", "bot", "ci-bot", "--owner", "nobody"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no account named"));
    let created = server.admin(&["bot", "deploy-bot", "--owner", "alice"]);
    assert!(
        created.contains("created bot deploy-bot, owned by alice"),
        "{created}"
    );
    let password = created
        .lines()
        .find_map(|l| l.split_once("): ").map(|(_, p)| p.trim().to_owned()))
        .unwrap();
    // A workspace that requires a second factor of people still lets its
    // bots in: they run unattended on a 192-bit admin-issued password.
    server.admin(&["policy", "--require-second-factor", "true"]);
    let bot = Person::fresh(&server, "deploy-bot").await;
    bot.client.login("deploy-bot", &password).await.unwrap();
    let status = bot.client.account().await.unwrap();
    assert_eq!(status.bot_owner.as_deref(), Some("alice"));
    assert!(!status.second_factor_required);
    bot.client.sync().await.unwrap();
    // People without a second factor can only enroll one.
    let blocked = bob.client.sync().await.unwrap_err();
    assert!(
        blocked.to_string().contains("requires two-factor"),
        "{blocked}"
    );
    server.admin(&["policy", "--require-second-factor", "false"]);

    // A member adds the bot, like anyone; everyone sees the mark and owner.
    alice.client.create_channel("ops").await.unwrap();
    alice.client.invite("ops", "bob").await.unwrap();
    alice.client.invite("ops", "deploy-bot").await.unwrap();
    bob.client.sync().await.unwrap();
    let members = bob.client.members("ops").await.unwrap();
    let owner_of = |user: &str| {
        members
            .iter()
            .find(|m| m.user == user)
            .unwrap_or_else(|| panic!("{user} not in {members:?}"))
            .bot_owner
            .clone()
    };
    assert_eq!(owner_of("deploy-bot").as_deref(), Some("alice"));
    assert_eq!(owner_of("alice"), None);
    assert_eq!(owner_of("bob"), None);

    // The bot reads and writes in the channel like a member.
    alice.client.send("ops", "deploy v2 please").await.unwrap();
    bot.client.sync().await.unwrap();
    let seen = bot.client.history("ops").await.unwrap();
    assert!(
        seen.iter().any(|e| e.text == "deploy v2 please"),
        "{seen:?}"
    );
    bot.client.send("ops", "deployed v2").await.unwrap();
    bob.client.sync().await.unwrap();
    let history = bob.client.history("ops").await.unwrap();
    assert_eq!(history.last().unwrap().sender, "deploy-bot");

    // The log records the bot and its addition.
    let events = server.admin(&["events", "--limit", "200"]);
    assert!(
        events.lines().any(|l| l.contains("account_created")
            && l.contains("deploy-bot")
            && l.contains("alice")),
        "{events}"
    );
    assert!(
        events
            .lines()
            .any(|l| l.contains("member_added") && l.contains("deploy-bot/")),
        "{events}"
    );

    // A person cannot pass as a bot, and a bot cannot hide its mark.
    let raw_bob = RawDevice::from_home(&server, bob.home.path()).await;
    let forged = raw_bob
        .signed(
            "POST",
            "/v1/key-packages",
            &json!({ "key_packages": [raw_bob.key_package("bob", Some("alice"))] }),
        )
        .await;
    assert_eq!(forged.status, 400, "{:?}", forged.json);
    assert!(
        forged.json.to_string().contains("bot mark"),
        "{:?}",
        forged.json
    );
    let raw_bot = RawDevice::from_home(&server, bot.home.path()).await;
    let hidden = raw_bot
        .signed(
            "POST",
            "/v1/key-packages",
            &json!({ "key_packages": [raw_bot.key_package("deploy-bot", None)] }),
        )
        .await;
    assert_eq!(hidden.status, 400, "{:?}", hidden.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slash_commands_go_encrypted_to_a_bot_in_the_channel() {
    let server = ServerProcess::start();
    let alice = Person::register(&server, "alice", PASSWORD).await;
    let password = server.create_bot("deploy-bot", "alice");
    let bot = Person::fresh(&server, "deploy-bot").await;
    bot.client.login("deploy-bot", &password).await.unwrap();

    // The registry: only bots answer commands; it holds no secrets.
    let not_a_bot = std::process::Command::new(conclave_tests::workspace_binary("conclave-server"))
        .arg("--data-dir")
        .arg(server.data.path().join("data"))
        .args([
            "admin", "command", "add", "deploy", "--bot", "alice", "--usage", "x",
        ])
        .output()
        .unwrap();
    assert!(!not_a_bot.status.success());
    assert!(String::from_utf8_lossy(&not_a_bot.stderr).contains("not a bot account"));
    server.admin(&[
        "command",
        "add",
        "/deploy",
        "--bot",
        "deploy-bot",
        "--usage",
        "/deploy SERVICE [VERSION]",
    ]);
    let commands = alice.client.commands().await.unwrap();
    assert_eq!(
        commands,
        [conclave_client::SlashCommand {
            name: "deploy".into(),
            bot: "deploy-bot".into(),
            usage: "/deploy SERVICE [VERSION]".into(),
        }]
    );

    // Unknown commands and absent bots are refused before anything is sent.
    alice.client.create_channel("ops").await.unwrap();
    let unknown = alice
        .client
        .run_command("ops", "/frobnicate now")
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("unknown command /frobnicate"),
        "{unknown}"
    );
    // A name cut short is answered with what it could be, and its usage.
    let short = alice
        .client
        .run_command("ops", "/dep web")
        .await
        .unwrap_err();
    assert!(
        short
            .to_string()
            .contains("did you mean /deploy SERVICE [VERSION]?"),
        "{short}"
    );
    let absent = alice
        .client
        .run_command("ops", "/deploy web v2")
        .await
        .unwrap_err();
    assert!(
        absent
            .to_string()
            .contains("deploy-bot, which is not in ops"),
        "{absent}"
    );
    assert!(alice.client.history("ops").await.unwrap().is_empty());

    // With the bot in the channel, the command reaches it, encrypted.
    alice.client.invite("ops", "deploy-bot").await.unwrap();
    alice
        .client
        .run_command("ops", "/deploy web-frontend v2.7.1")
        .await
        .unwrap();
    bot.client.sync().await.unwrap();
    let seen = bot.client.history("ops").await.unwrap();
    assert!(
        seen.iter()
            .any(|e| e.sender == "alice" && e.text == "/deploy web-frontend v2.7.1"),
        "{seen:?}"
    );
    for file in server.files() {
        let bytes = std::fs::read(&file).unwrap();
        let needle = b"web-frontend v2.7.1";
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{} holds the command in clear",
            file.display()
        );
    }
}
