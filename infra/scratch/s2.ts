import * as fs from 'node:fs';
import { buildApp } from '/work/main/infra/lib/app';
import * as iam from '/work/main/infra/node_modules/aws-cdk-lib/aws-iam';
const outdir = fs.mkdtempSync('/tmp/nagtest-');
const { app, stack } = buildApp({ LAMBDA_ASSET_DIR: '/tmp/lambda-assets', ECS_CLUSTER_NAME: 'gpu-training' }, { outdir });
stack.functions['ecs-task-handler'].role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::some-bucket/*'] }));
try { const asm = app.synth(); console.log('synth ok', asm.directory); } catch (e) { console.log('THREW', String(e).slice(0, 500)); }
console.log(fs.readdirSync(outdir));
