/** The command queue: lifecycle, persistence, delivery (docs/commands.md). */
export {
  CommandQueue,
  type CommandQueueOptions,
  type CommandQueueEvents,
  type CommandRequest,
  type ListCommandsQuery,
  type CommandSessions,
} from './queue.js';
export {
  COMMAND_LIMITS,
  COMMAND_STATES,
  UNFINISHED_STATES,
  isUnfinished,
  type Command,
  type CommandHistoryEntry,
  type CommandState,
} from './model.js';
