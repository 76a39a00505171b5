package relay.deploy;

/**
 * A mixin of options that can be checked on their own. The command line checks every such mixin of the command
 * it runs before the command's own work starts (see {@link Relay#commandLine()}), so a command does not repeat
 * the calls, and a bad option is refused before anything is read, allocated or written.
 */
interface CheckedOptions {
    /** Throws an {@link IllegalArgumentException} naming the option, what it allows and what it got. */
    void check();
}
