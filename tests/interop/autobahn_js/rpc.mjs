// RPC between two Autobahn|JS sessions: a callee with a backend ticket
// registers com.example.add2, an anonymous caller calls it. Also tries to
// register from the anonymous session (the gateway must refuse).
// Prints one {result, invocation, anonymous_register_error, call_error}.
// Config: {url, serializer?, ticket}
import { answer, close, config, done, emit, fail, open, plain } from './common.mjs';

try {
   const callee = await open({ authmethods: ['ticket'], onchallenge: answer(config.ticket) });
   const caller = await open({ authmethods: ['anonymous'] });
   let invocation = null;
   await callee.session.register('com.example.add2', (args, kwargs, details) => {
      invocation = plain(details);
      return args[0] + args[1];
   });
   const result = await caller.session.call('com.example.add2', [2, 3], {}, { disclose_me: true });

   let anonymousRegisterError = null;
   try {
      await caller.session.register('com.example.mul2', (args) => args[0] * args[1]);
   } catch (err) {
      anonymousRegisterError = { error: err.error, args: err.args, kwargs: err.kwargs };
   }

   let callError = null;
   try {
      await caller.session.call('com.example.nowhere', []);
   } catch (err) {
      callError = { error: err.error, args: err.args, kwargs: err.kwargs };
   }

   emit({
      result,
      invocation,
      caller_session: caller.session.id,
      anonymous_register_error: anonymousRegisterError,
      call_error: callError,
   });
   await close(caller.connection);
   await close(callee.connection);
   done(0);
} catch (err) {
   fail(err);
}
