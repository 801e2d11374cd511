// `node --import ./test/jsx.mjs`: lets Node import .jsx files (the card and its tests), nothing else.
import { register } from 'node:module';

register('./jsx-hooks.mjs', import.meta.url);
