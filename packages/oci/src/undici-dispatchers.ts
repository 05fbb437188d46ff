import type { Agent as AgentType, ProxyAgent as ProxyAgentType } from 'undici';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ProxyAgentClass from 'undici/lib/dispatcher/proxy-agent.js';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';
import api from 'undici/lib/api/index.js';

/**
 * The two undici dispatchers the transport uses, without `import 'undici'`: undici's index loads
 * all of undici (fetch, WebSocket, caches, mocks: ~1 MB of code), which every run of the CLI paid
 * for at start-up (~40 ms of a ~300 ms start). These are the same classes, with the request API
 * attached to Dispatcher exactly as undici's index attaches it.
 */
Object.assign(DispatcherClass.prototype, api);

export const Agent: typeof AgentType = AgentClass;
export const ProxyAgent: typeof ProxyAgentType = ProxyAgentClass;
