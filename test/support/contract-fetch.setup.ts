// Every test file: answers read with fetch keep the OpenAPI contract too (contract-fetch.ts).
import { installFetchContract } from './contract-fetch';

installFetchContract();
