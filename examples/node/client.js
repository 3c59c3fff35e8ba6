// A Switchboard client in Node.js: it loads the contract straight from protos/ (no generated
// code), then upserts a contact, scores its lead, triggers the newsletter flow and watches the
// run until it ends.
//
//   npm ci && node client.js [EMAIL]
//
// Environment (see README.md): SWITCHBOARD_TARGET (default localhost:50051),
// SWITCHBOARD_API_KEY (sent as `authorization: Bearer …`), else the key in
// SWITCHBOARD_API_KEY_FILE (default ../../data/switchboard.db.local-api-key, the development
// key `make run` writes), SWITCHBOARD_PROTOS (default ../../protos).
// Exit code: 0 when the run succeeded, 1 on any error or a failed run.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const TARGET = process.env.SWITCHBOARD_TARGET || 'localhost:50051';
const PROTOS = process.env.SWITCHBOARD_PROTOS || path.join(__dirname, '..', '..', 'protos');
const DEADLINE_MS = 10_000;
const KEY_FILE =
  process.env.SWITCHBOARD_API_KEY_FILE || path.join(__dirname, '..', '..', 'data', 'switchboard.db.local-api-key');

// The API key: SWITCHBOARD_API_KEY, else the development key file (said on stderr), else none.
function apiKey() {
  if (process.env.SWITCHBOARD_API_KEY) {
    return process.env.SWITCHBOARD_API_KEY;
  }
  try {
    const key = fs.readFileSync(KEY_FILE, 'utf8').trim();
    if (key) {
      console.error(`using the development key in ${KEY_FILE}`);
      return key;
    }
  } catch (err) {
    if (err.code !== 'ENOENT') {
      throw err;
    }
  }
  return '';
}
const API_KEY = apiKey();

function loadContract() {
  const definition = protoLoader.loadSync(
    ['switchboard/v1/contacts.proto', 'switchboard/v1/leads.proto', 'switchboard/v1/campaigns.proto'],
    {
      includeDirs: [PROTOS],
      keepCase: true, // field names as in the .proto files (snake_case)
      longs: String, // int64 as strings, like the JSON mapping
      enums: String, // enum values by name, e.g. RUN_STATUS_SUCCEEDED
      defaults: false,
      oneofs: true,
    },
  );
  return grpc.loadPackageDefinition(definition).switchboard.v1;
}

function metadata() {
  const md = new grpc.Metadata();
  if (API_KEY) {
    md.set('authorization', `Bearer ${API_KEY}`);
  }
  return md;
}

// Calls a unary method with a deadline; resolves with the reply or rejects with the status.
function call(client, method, request) {
  const deadline = new Date(Date.now() + DEADLINE_MS);
  return new Promise((resolve, reject) => {
    client[method](request, metadata(), { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// Resolves with the last state of the run once the server closes the stream.
function watchRun(campaigns, runId, onChange) {
  return new Promise((resolve, reject) => {
    let last = null;
    const stream = campaigns.WatchRun({ id: runId }, metadata());
    stream.on('data', (reply) => {
      last = reply.run;
      onChange(last);
    });
    stream.on('error', reject);
    stream.on('end', () => resolve(last));
  });
}

async function main(email) {
  const v1 = loadContract();
  const credentials = grpc.credentials.createInsecure();
  const contacts = new v1.ContactSync(TARGET, credentials);
  const leads = new v1.LeadScoring(TARGET, credentials);
  const campaigns = new v1.CampaignTriggers(TARGET, credentials);
  try {
    const upserted = await call(contacts, 'UpsertContact', {
      contact: { email, first_name: 'Ada', consent: { opt_in: true, source: 'node-example' }, lists: ['newsletter'] },
      idempotency_key: crypto.randomUUID(), // makes a retried write safe
    });
    console.log(`contact ${upserted.contact.id} ${upserted.created ? 'created' : 'updated'} (version ${upserted.contact.version})`);

    const { lead } = await call(leads, 'ScoreLead', { contact: { email } });
    console.log(`lead score ${lead.score || 0} grade ${lead.grade}`);

    const { run } = await call(campaigns, 'TriggerCampaign', {
      event: 'newsletter.signup',
      contact: { email },
      idempotency_key: crypto.randomUUID(),
    });
    console.log(`run ${run.id} started`);

    const final = await watchRun(campaigns, run.id, (state) => {
      const steps = (state.steps || []).map((s) => `${s.connector}:${s.status.replace('STEP_STATUS_', '')}`);
      console.log(`run ${state.id} ${state.status} [${steps.join(' ')}]`);
    });
    return final && final.status === 'RUN_STATUS_SUCCEEDED' ? 0 : 1;
  } finally {
    contacts.close();
    leads.close();
    campaigns.close();
  }
}

main(process.argv[2] || 'ada@example.com').then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // One readable line: the gRPC status name and message.
    const code = err.code === undefined ? 'ERROR' : grpc.status[err.code];
    console.error(`error: ${code}: ${err.details || err.message}`);
    if (err.code === grpc.status.UNAUTHENTICATED && !API_KEY) {
      console.error(`hint: set SWITCHBOARD_API_KEY (the key \`make run\` printed), or start the server with \`make run\` so that ${KEY_FILE} exists`);
    }
    process.exitCode = 1;
  },
);
