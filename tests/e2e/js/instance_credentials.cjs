// Code on an instance, in JavaScript: the AWS SDK for JavaScript v3 finds the instance role through the metadata
// service named by AWS_EC2_METADATA_SERVICE_ENDPOINT, then calls STS GetCallerIdentity through AWS_ENDPOINT_URL.
// Prints one JSON line: {"accessKeyId", "expiration", "arn"} (arn only when "--caller-identity" is given).
"use strict";

const { fromInstanceMetadata } = require("@aws-sdk/credential-providers");
const { STSClient, GetCallerIdentityCommand } = require("@aws-sdk/client-sts");

async function main() {
  const provider = fromInstanceMetadata({ timeout: 5000, maxRetries: 1 });
  const credentials = await provider();
  const out = { accessKeyId: credentials.accessKeyId, expiration: credentials.expiration.toISOString() };
  if (process.argv.includes("--caller-identity")) {
    const sts = new STSClient({ credentials: provider });
    out.arn = (await sts.send(new GetCallerIdentityCommand({}))).Arn;
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((error) => {
  process.stderr.write(`${error.name}: ${error.message}\n`);
  process.exit(1);
});
