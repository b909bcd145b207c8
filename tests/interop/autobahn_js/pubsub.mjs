// Pub/sub between two Autobahn|JS sessions: an anonymous subscriber and a
// ticket-authenticated publisher that is itself subscribed to the topic.
// Publishes twice with acknowledge: once by default (no echo to the
// publisher expected), once with exclude_me: false (echo expected).
// Prints one {publications, subscriber, publisher}: the events each side got.
// Config: {url, serializer?, ticket, topic}
import { answer, close, config, done, emit, fail, open, plain, sleep } from './common.mjs';

try {
   const subscriber = await open({ authmethods: ['anonymous'] });
   const publisher = await open({ authmethods: ['ticket'], onchallenge: answer(config.ticket) });
   const got = { subscriber: [], publisher: [] };
   for (const [name, side] of [['subscriber', subscriber], ['publisher', publisher]]) {
      await side.session.subscribe(config.topic, (args, kwargs, event) => {
         got[name].push({ args, kwargs, details: plain(event), raw_details: side.serializer.eventDetails.get(event.publication) });
      });
   }
   const first = await publisher.session.publish(config.topic, ['hello'], { n: 1 }, { acknowledge: true });
   const second = await publisher.session.publish(config.topic, ['again'], { n: 2 }, { acknowledge: true, exclude_me: false });
   // Both events are on their way; wait until the subscriber has both, then a little more for any stray echo.
   for (let i = 0; i < 100 && (got.subscriber.length < 2 || got.publisher.length < 1); i++) {
      await sleep(20);
   }
   await sleep(200);
   emit({ publications: [plain(first), plain(second)], ...got });
   await close(subscriber.connection);
   await close(publisher.connection);
   done(0);
} catch (err) {
   fail(err);
}
