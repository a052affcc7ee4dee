import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { frames } from './lib/frame.js';
import { live } from './lib/live/index.js';

mount(App, { target: document.getElementById('app')! });

// For the browser bench and devtools: frame work durations (a bounded ring buffer) and the live client.
(globalThis as unknown as { __tendril: object }).__tendril = { frames, live };
