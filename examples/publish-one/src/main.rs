//! Publishes one `UserSignedUp` event with the eventfork Publisher and prints its event id.
//!
//! Run it against the local bus (`eventfork local up` in another terminal, whose bus is
//! `eventfork`; for AWS itself, drop the endpoint and the dummy keys):
//!
//! ```text
//! AWS_ENDPOINT_URL=http://127.0.0.1:4010 AWS_REGION=us-east-1 \
//!     AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
//!     cargo run -p example-publish-one -- eventfork
//! ```

use events_schema::{Plan, SignupMethod, UserSignedUp};
use router::Publisher;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus = std::env::args()
        .nth(1)
        .ok_or("usage: example-publish-one BUS")?;
    // The standard chain: AWS_REGION, credentials, AWS_ENDPOINT_URL, profiles.
    let sdk_config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let publisher = Publisher::new(&sdk_config, bus);
    // A wrong bus name fails here, not silently later.
    publisher.verify_bus().await?;

    let event = UserSignedUp::builder("user-42", "ada@example.com")?
        .display_name("Ada Lovelace")
        .plan(Plan::Pro)
        .signup_method(SignupMethod::Github)
        .build();
    let event_id = publisher.publish(&event).await?;
    println!("published {event_id}");
    Ok(())
}
