// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import "./Token.sol";

/// Deploys child Tokens, so indexers can be tested on addresses discovered from events.
contract Factory {
    event TokenCreated(address indexed token, string name);

    function createToken(string calldata name, string calldata symbol, uint256 supply) external returns (address token) {
        token = address(new Token(name, symbol, supply, msg.sender));
        emit TokenCreated(token, name);
    }
}
