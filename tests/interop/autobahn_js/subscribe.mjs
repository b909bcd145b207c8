// Subscribe to config.topic, print {ready} once SUBSCRIBED, then print the
// first event received ({event, kwargs, details, raw_details}) and exit.
// Config: {url, serializer: "json"|"msgpack", topic, ticket?}
import { answer, close, config, done, emit, fail, open, plain } from './common.mjs';

try {
   const { session, details, connection, serializer } = await open({
      authmethods: config.ticket ? ['ticket'] : ['anonymous'],
      onchallenge: answer(config.ticket),
   });
   await session.subscribe(config.topic, async (args, kwargs, event) => {
      emit({
         event: args[0],
         args,
         kwargs,
         details: plain(event),
         raw_details: serializer.eventDetails.get(event.publication),
      });
      await close(connection);
      done(0);
   });
   emit({ ready: true, session: session.id, authid: details.authid, authrole: details.authrole, protocol: details.transport && details.transport.protocol });
} catch (err) {
   fail(err);
}
