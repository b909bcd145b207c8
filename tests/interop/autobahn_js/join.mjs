// Join with config.authmethods and print either {joined, session, authid,
// authrole, authmethod, authprovider} or {closed, reason, details} (the
// Connection.onclose arguments when the gateway refuses the session).
// Config: {url, serializer?, authmethods, authid?, ticket?, wampcra_key?}
import { answer, close, config, done, emit, fail, open } from './common.mjs';

try {
   const { session, details, connection } = await open({
      authmethods: config.authmethods,
      authid: config.authid,
      onchallenge: answer(config.ticket, config.wampcra_key),
   });
   emit({
      joined: true,
      session: session.id,
      authid: details.authid,
      authrole: details.authrole,
      authmethod: details.authmethod,
      authprovider: details.authprovider,
   });
   await close(connection);
   done(0);
} catch (err) {
   if (err && err.reason !== undefined && err.details !== undefined) {
      emit({ closed: true, reason: err.reason, details: err.details });
      done(0);
   } else {
      fail(err);
   }
}
